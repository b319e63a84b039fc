"""Alerts of budgets and anomalies, and the ledger that sends each exactly once.

An alert has a stable id: `budget:<month>:<product>[/<subscription>]:<threshold>` (one per product,
threshold and month, however many days or re-runs show the same crossing) or
`anomaly:<day>:<product>:<model>`. The ledger remembers which ids were sent and which are still to send:
an id is queued once, sent until the webhook accepts it, and never queued again. It is kept in two places
a reader can read: the queue (alerts to send in full, ids sent) as an indented JSON file
(`queue_file`, written by the alert sensor beside the reports) and how far the sensor read each asset as
the sensor's cursor, a short marker (`position`: `{"budget_status": 812, "cost_anomalies": 790}`).
Pure: the sensor does the reading, writing and posting.
"""

import json
from dataclasses import asdict, dataclass, field
from datetime import date

from chargeback_pipeline.core.finops.anomalies import Judgement
from chargeback_pipeline.core.finops.budgets import BudgetLine

# Ids of sent alerts are kept this many months (older crossings cannot recur: their month is over).
KEEP_MONTHS = 3
MAX_PENDING = 500  # beyond this the oldest pending alerts are dropped, and the drop is logged


@dataclass(frozen=True)
class Alert:
    id: str
    title: str
    text: str
    facts: dict[str, str] = field(default_factory=dict)
    # A forecast alert's evidence: published days its run rate averages, and the minimum it needs.
    evidence_days: int | None = None
    evidence_needed: int | None = None

    @property
    def month(self) -> str:
        return self.id.split(":")[1][:7]

    @property
    def is_forecast(self) -> bool:
        return self.id.startswith("budget:") and self.id.rsplit(":", 1)[1].startswith("forecast_")

    @property
    def has_evidence(self) -> bool:
        """False for a forecast alert without its stated minimum of published days (or written before the
        minimum was recorded): such an alert is never queued."""
        if not self.is_forecast:
            return True
        return None not in (self.evidence_days, self.evidence_needed) and self.evidence_days >= self.evidence_needed


def budget_alert_id(month: date, product: str, subscription: str | None, threshold: str) -> str:
    return f"budget:{month:%Y-%m}:{product}{'/' + subscription if subscription else ''}:{threshold}"


def anomaly_alert_id(day: date, product: str, model: str) -> str:
    return f"anomaly:{day.isoformat()}:{product}:{model}"


def payload(alert: Alert, fmt: str = "text") -> dict:
    """The JSON body of an incoming webhook. `text` ({"text": ...}) is what Slack incoming webhooks and
    Teams' (Office 365 connector) incoming webhooks accept; `adaptive_card` is what a Teams Workflows
    "When a Teams webhook request is received" flow accepts."""
    facts = {**alert.facts, "alert id": alert.id}  # the id: what a reader quotes, what a duplicate would repeat
    lines = [f"*{alert.title}*", alert.text, *(f"{name}: {value}" for name, value in facts.items())]
    if fmt == "text":
        return {"text": "\n".join(lines)}
    card = {
        "type": "AdaptiveCard",
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "version": "1.4",
        "body": [
            {"type": "TextBlock", "text": alert.title, "weight": "Bolder", "wrap": True},
            {"type": "TextBlock", "text": alert.text, "wrap": True},
            {"type": "FactSet", "facts": [{"title": k, "value": v} for k, v in facts.items()]},
        ],
    }
    return {
        "type": "message",
        "attachments": [
            {"contentType": "application/vnd.microsoft.card.adaptive", "contentUrl": None, "content": card}
        ],
    }


@dataclass
class Ledger:
    """What the alert sensor remembers between ticks: how far it read each asset's materializations, the
    ids it sent, and the alerts still to send (oldest first)."""

    after: dict[str, int] = field(default_factory=dict)
    sent: list[str] = field(default_factory=list)
    pending: list[Alert] = field(default_factory=list)

    @classmethod
    def of_stored(cls, cursor: str | None, queue_file: bytes | None) -> "Ledger":
        """The ledger from the sensor's cursor (`position`) and its queue file (`queue_file`; None when there
        is none yet). A cursor written before the queue had its file held the whole ledger: its queue is
        taken from it when no file exists yet, so an upgrade loses no alert and posts none twice."""
        position = json.loads(cursor) if cursor else {}
        queue = json.loads(queue_file) if queue_file else {}
        if "after" in position:  # the whole ledger, as cursors were written before
            queue = queue or position
            position = position["after"]
        return cls(dict(position), list(queue.get("sent", [])), [Alert(**alert) for alert in queue.get("pending", [])])

    def position(self) -> str:
        """The sensor's cursor: the storage id of the last materialization read, per asset."""
        return json.dumps(self.after, sort_keys=True)

    def queue_file(self) -> bytes:
        """The queue as a reader reads it: each alert still to send in full (oldest first), then the ids sent."""
        queue = {"pending": [asdict(a) for a in self.pending], "sent": self.sent}
        return (json.dumps(queue, indent=2, ensure_ascii=False) + "\n").encode("utf-8")

    def queue(self, alerts: list[Alert]) -> int:
        """Queue the alerts never sent nor queued (a forecast alert only with its evidence); returns how
        many are new."""
        known = set(self.sent) | {alert.id for alert in self.pending}
        new = [alert for alert in alerts if alert.has_evidence and alert.id not in known and not known.add(alert.id)]
        self.pending += new
        return len(new)

    def mark_sent(self, alert: Alert) -> None:
        self.pending = [a for a in self.pending if a.id != alert.id]
        self.sent.append(alert.id)

    def prune(self, today: date) -> list[Alert]:
        """Forget sent ids of months older than KEEP_MONTHS, and cap the queue; returns the alerts dropped."""
        oldest = (today.year * 12 + today.month - 1) - KEEP_MONTHS
        self.sent = [i for i in self.sent if _month_index(i.split(":")[1][:7]) >= oldest]
        dropped = self.pending[:-MAX_PENDING] if len(self.pending) > MAX_PENDING else []
        self.pending = self.pending[len(dropped) :]
        return dropped


def _month_index(month: str) -> int:
    year, number = month.split("-")
    return int(year) * 12 + int(number) - 1


def _amount(value, currency: str, minor_unit: int) -> str:
    return f"{round(value, minor_unit):,.{minor_unit}f} {currency}"


_BUDGET_WORDS = {"forecast": "is forecast to reach", "actual": "has spent"}


def budget_alerts(lines: list[BudgetLine], currency: str, minor_unit: int) -> list[Alert]:
    """One alert per budget line and threshold it crossed (the id makes it once per month)."""
    alerts = []
    for line in lines:
        scope = line.product_id + (f" (subscription {line.subscription_id})" if line.subscription_id else "")
        month = line.usage_date.replace(day=1)
        facts = {
            "budget": _amount(line.budget, currency, minor_unit),
            "spend to date": f"{_amount(line.spend_to_date, currency, minor_unit)} ({line.actual_percent:g} %)",
            "month-end forecast": f"{_amount(line.forecast, currency, minor_unit)} ({line.forecast_percent:g} %)",
            "as of": f"{line.usage_date} ({line.days_published} of {line.days_in_month} days published)",
            "forecast basis": (
                f"{line.run_rate_days} published days of the last 7 (needs {line.forecast_min_days}); "
                f"{line.days_to_come} days to come projected, {line.days_missing} past days missing"
            ),
        }
        for name in line.crossed:
            if name == "over_budget":
                title = f"Over budget: {scope}, {month:%Y-%m}"
                text = f"{scope} has spent more than its {month:%Y-%m} budget."
            else:
                kind, percent = name.split("_")[0], name.split("_")[1].removesuffix("pct")
                title = f"Budget {kind} at {percent} %: {scope}, {month:%Y-%m}"
                text = f"{scope} {_BUDGET_WORDS[kind]} {percent} % or more of its {month:%Y-%m} budget."
            alert_id = budget_alert_id(month, line.product_id, line.subscription_id, name)
            alerts.append(Alert(alert_id, title, text, facts, line.run_rate_days, line.forecast_min_days))
    return alerts


def anomaly_alerts(judged: list[Judgement], currency: str, minor_unit: int) -> list[Alert]:
    alerts = []
    for item in judged:
        if not item.is_anomaly:
            continue
        title = f"Cost anomaly: {item.product_id} / {item.model_name} on {item.usage_date}"
        text = (
            f"{item.product_id} spent {_amount(item.cost, currency, minor_unit)} on {item.model_name}, against a "
            f"median of {_amount(item.baseline_cost, currency, minor_unit)} over the {item.history_days} days before."
        )
        facts = {
            "cost change": f"+{_amount(item.cost_change, currency, minor_unit)}",
            "cost score": f"{item.cost_score:.1f} (robust z, median and MAD)",
            "tokens": (
                f"{item.tokens:,} against a median of {item.baseline_tokens:,.0f} (score {item.tokens_score:.1f})"
            ),
        }
        alerts.append(Alert(anomaly_alert_id(item.usage_date, item.product_id, item.model_name), title, text, facts))
    return alerts
