"""The reconciliation gate that every published daily file passes (usage report, chargeback).

A day whose reconciliation is blocked is not published: its previously published files, if any, stay
untouched, and the step fails naming the deployment-days. The override (run config
`publish_despite_blocked_reconciliation` with an `override_reason`, or the CLI flag of the same name)
publishes anyway and records that it did, beside the files and in the run's metadata.
"""

import json
from datetime import date

import dagster as dg
import pyarrow as pa

from chargeback_pipeline.core.reconciliation import BLOCK
from chargeback_pipeline.storage.keys import override_key
from chargeback_pipeline.storage.object_store import ObjectStore


class PublishConfig(dg.Config):
    publish_despite_blocked_reconciliation: bool = False
    override_reason: str = ""


def blocked_reasons(reconciliation: pa.Table) -> list[str]:
    """One message per blocked deployment-day, naming the deployment, the worst hour and the numbers."""
    reasons = []
    for r in reconciliation.to_pylist():
        if BLOCK not in (r["day_verdict"], r["worst_hour_verdict"]):
            continue
        metric = r["metric_prompt_tokens"] + r["metric_completion_tokens"]
        logged = r["logged_prompt_tokens"] + r["logged_completion_tokens"]
        hour_gap = r["worst_hour_metric_tokens"] - r["worst_hour_logged_tokens"]
        reasons.append(
            f"{r['deployment_name']} on {r['usage_date']}: metrics {metric:,} tokens, APIM logged {logged:,}, "
            f"unattributed {metric - logged:,} ({r['unattributed_percent']}%, {r['day_verdict']}); worst hour "
            f"{r['worst_hour']:%H:00}: metrics {r['worst_hour_metric_tokens']:,}, logged "
            f"{r['worst_hour_logged_tokens']:,}, unattributed {hour_gap:,} "
            f"({r['worst_hour_unattributed_percent']}%, {r['worst_hour_verdict']})"
        )
    return reasons


class PublicationGate:
    """Decides day by day whether `what` may be published to `target`; fails the step if a day was held."""

    def __init__(self, context: dg.AssetExecutionContext, config: PublishConfig, target: ObjectStore, what: str):
        self.context, self.config, self.target, self.what = context, config, target, what
        self.blocked: list[str] = []  # reasons of the days held back
        self.overridden: list[str] = []  # days published despite a blocked reconciliation

    def admits(self, day: date, reconciliation: pa.Table) -> bool:
        """Whether `day` may be published; an override is recorded beside the day's files."""
        reasons = blocked_reasons(reconciliation)
        if reasons and not self.config.publish_despite_blocked_reconciliation:
            self.blocked += reasons
            self.context.log.error(
                f"not publishing the {self.what} of {day}: reconciliation blocked: {'; '.join(reasons)}"
            )
            return False
        if reasons:
            self.overridden.append(str(day))
            record = {"usage_date": str(day), "blocked": reasons, "reason": self.config.override_reason}
            self.target.write_bytes(override_key(day), json.dumps(record, indent=2).encode())
            self.context.log.warning(
                f"publishing the {self.what} of {day} despite blocked reconciliation: {self.config.override_reason!r}"
            )
        else:
            self.target.delete(override_key(day))
        return True

    def fail_if_blocked(self, published: list[str]) -> None:
        """Raise a Failure naming every held-back deployment-day (after the other days were published)."""
        if not self.blocked:
            return
        raise dg.Failure(
            description=(
                f"reconciliation blocked {len(self.blocked)} deployment-day(s); {self.what} not published: "
                f"{'; '.join(self.blocked)}. Previously published files are untouched. To publish anyway, run "
                "with config publish_despite_blocked_reconciliation: true and an override_reason (CLI: "
                "--publish-despite-blocked-reconciliation REASON)."
            ),
            metadata={"blocked": self.blocked, "published": published},
        )
