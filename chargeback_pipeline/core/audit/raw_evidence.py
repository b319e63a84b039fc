"""The audit's evidence for one day, read from the lake's landed raw hour objects with the audit's own SQL
(`dbt_like_sql/audit/`), beside the values it judges (what the attribution billed, the reconciliation's
hourly gaps). Sums are plain Python over the SQL's rows.

Per hour h: the gateway rows of h-1, h and h+1 (those landed) stand beside the LLM rows of h, so a request
whose gateway row and token record sit on either side of an hour (or of midnight) is classified by its own
gateway row; the LLM object of h already spans the join margin around h.
"""

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from chargeback_pipeline.core.periods import day_hours
from chargeback_pipeline.storage import keys, sql
from chargeback_pipeline.storage.lake import Lake

SUCCESSFUL_MODEL = "audit/audit_hour_successful_tokens"
STATUS_MODEL = "audit/audit_hour_logged_request_status"
BILLED_MODEL = "audit/audit_hour_billed_tokens"
HOUR = timedelta(hours=1)
TOKEN_METRICS = ("ProcessedPromptTokens", "GeneratedTokens")  # Azure Monitor's names (README: Reconciliation)

Key = tuple[str, str]  # (backend_id, deployment_name)
Tokens = tuple[int, int]  # (prompt, completion)


def _add(counter: Counter, key, row: dict) -> None:
    counter[(key, "prompt")] += row["prompt_tokens"]
    counter[(key, "completion")] += row["completion_tokens"]


@dataclass
class DayEvidence:
    day: date
    # (hour, backend, deployment) -> tokens: billed (judged) and the successful logged bound (evidence)
    billed_by_hour: Counter = field(default_factory=Counter)
    successful_by_hour: Counter = field(default_factory=Counter)
    # (backend, deployment) -> tokens logged on the day, by the request's gateway status
    failed: Counter = field(default_factory=Counter)
    no_gateway_row: Counter = field(default_factory=Counter)  # backend 'unknown' until placed
    billed_another_day: Counter = field(default_factory=Counter)  # logged today, gateway row on another day
    logged_another_day: Counter = field(default_factory=Counter)  # gateway row today, logged another day
    # (resource_id, deployment) -> metered tokens (raw Azure Monitor rows), and per hour
    metered: Counter = field(default_factory=Counter)
    hours_landed: int = 0

    def tokens(self, counter: Counter, key) -> Tokens:
        return counter[(key, "prompt")], counter[(key, "completion")]

    def keys_of(self, counter: Counter) -> list:
        return sorted({key for key, _ in counter})


def _landed(lake: Lake, dataset: str, hours: list[datetime]) -> list[str]:
    return [keys.hour_key(dataset, hour) for hour in hours if lake.store.exists(keys.hour_key(dataset, hour))]


def day_evidence(lake: Lake, day: date, database=None) -> DayEvidence:
    """The day's evidence, hour by hour; an hour whose raw rows were not landed is skipped (and counted).
    `database`: a `sql.shared_database()` to work in (default: one of its own); one database for the day's
    hours (each hour a connection of its own to it), so its threads and memory are set up once, not 24 times."""
    evidence = DayEvidence(day)
    own = database is None
    database = sql.connect() if own else database
    try:
        for hour in day_hours(day):
            _add_hour(evidence, lake, hour, database)
    finally:
        if own:
            database.close()
    for key in _landed(lake, keys.RAW_METRICS, day_hours(day)):
        for row in lake.read(key).to_pylist():
            in_day = row["TimeStamp"] is not None and row["TimeStamp"].date() == day
            if in_day and row["MetricName"] in TOKEN_METRICS and row["Total"] is not None:
                part = "prompt" if row["MetricName"] == "ProcessedPromptTokens" else "completion"
                evidence.metered[((row["ResourceId"], row["ModelDeploymentName"]), part)] += row["Total"]
    return evidence


def hour_relations(lake: Lake, hour: datetime) -> dict | None:
    """What the audit's models read for `hour`: the landed raw LLM rows of the hour, the gateway rows of the
    hour and of the hours beside it, and (when written) the hour's attributed requests; None when the
    hour's own raw rows were not landed."""
    llm = _landed(lake, keys.RAW_LLM, [hour])
    gateway = _landed(lake, keys.RAW_GATEWAY, [hour - HOUR, hour, hour + HOUR])
    attributed = _landed(lake, keys.ATTRIBUTED, [hour])
    if not llm or keys.hour_key(keys.RAW_GATEWAY, hour) not in gateway:
        return None
    relations = {"raw_gateway_logs": lake.relation(gateway), "raw_llm_logs": lake.relation(llm)}
    if attributed:
        relations["attributed_requests"] = lake.relation(attributed)
    return relations


def hour_params(hour: datetime) -> dict:
    return {"window_start": hour, "window_end": hour + HOUR}


def _add_hour(evidence: DayEvidence, lake: Lake, hour: datetime, database) -> None:
    """One hour's evidence added to the day's; nothing when its own raw rows were not landed."""
    relations = hour_relations(lake, hour)
    if relations is None:
        return
    evidence.hours_landed += 1
    day = evidence.day
    con = sql.connect(database)
    try:
        sql.build_models(con, [], relations)
        params = hour_params(hour)
        for row in sql.select_model(con, SUCCESSFUL_MODEL, params).to_pylist():
            key = (row["backend_id"], row["deployment_name"])
            _add(evidence.successful_by_hour, (hour, *key), row)
            if row["llm_date"] != day:
                _add(evidence.logged_another_day, key, row)
        for row in sql.select_model(con, STATUS_MODEL, params).to_pylist():
            key = (row["backend_id"], row["deployment_name"])
            if row["request_status"] == "failed":
                _add(evidence.failed, key, row)
            elif row["request_status"] == "no_gateway_row":
                _add(evidence.no_gateway_row, key, row)
            elif row["gateway_date"] != day:
                _add(evidence.billed_another_day, key, row)
        if "attributed_requests" in relations:
            for row in sql.select_model(con, BILLED_MODEL).to_pylist():
                _add(evidence.billed_by_hour, (hour, row["backend_id"], row["deployment_name"]), row)
    finally:
        con.close()


def by_backend(counter: Counter, backend_of) -> defaultdict:
    """Re-key a (key, part) counter through `backend_of(key) -> key or None` (None: dropped)."""
    out: defaultdict = defaultdict(int)
    for (key, part), tokens in counter.items():
        placed = backend_of(key)
        if placed is not None:
            out[(placed, part)] += tokens
    return out
