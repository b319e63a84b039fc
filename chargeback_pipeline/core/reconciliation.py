"""Judging logged tokens against the deployments' own metrics, per deployment-hour and -day.

A deployment-hour (or -day) breaches a level when the share of its metric tokens that APIM did not
log exceeds the level's percent AND the gap exceeds the level's token amount. The gap is judged by
its size either way: more tokens logged than metered is as suspicious as fewer. Periods whose metrics
count fewer than `min_tokens` are not judged (a few stray tokens make huge percentages).
"""

from datetime import date, datetime

import pyarrow as pa

from chargeback_pipeline.core.attribution import hour_params
from chargeback_pipeline.core.periods import day_hours
from chargeback_pipeline.core.quality import QualityPolicy
from chargeback_pipeline.core.topology import NO_TOPOLOGY, BackendTopology, TopologyError
from chargeback_pipeline.storage import keys, sql
from chargeback_pipeline.storage.lake import Lake
from chargeback_pipeline.storage.schemas import DEPLOYMENT_METRICS_SCHEMA

OK, WARN, BLOCK, NO_METRICS, TOO_SMALL = "ok", "warn", "block", "no metrics", "below minimum"
# Logged tokens whose backend is unknown on a deployment name several resources serve: inside those
# resources' unattributed tokens, so not judged on their own (fct_deployment_reconciliation).
UNPLACED = "backend unknown"
UNKNOWN_BACKEND = "unknown"
SEVERITY = {OK: 0, TOO_SMALL: 0, UNPLACED: 0, NO_METRICS: 1, WARN: 2, BLOCK: 3}
TOKEN_COLUMNS = ("metric_prompt_tokens", "metric_completion_tokens", "logged_prompt_tokens", "logged_completion_tokens")
DAY_KEY_COLUMNS = ("usage_date", "backend_id", "resource_id", "deployment_name", "has_metrics", *TOKEN_COLUMNS)
HOURLY_MODEL = "marts/fct_deployment_reconciliation"
DAILY_TOTALS_MODEL = "marts/fct_daily_reconciliation_totals"


def _unplaced_shares(rows: list[dict]) -> dict[int, int]:
    """Per row index: how much of its gap the logged tokens with no known backend on its deployment name
    in its period (backend `unknown`) can explain. Those records were logged, and the resource that
    served them counts them in its metrics, so one of the name's resources holds them in its gap; which
    one, nothing says. So each resource's gap is judged without up to all of them: a resource is flagged
    only for a gap those records cannot explain (a resource whose logs are lost still is). The money keeps
    the whole gap (`unattributed`), so the day still adds up per resource."""
    unplaced: dict[tuple, int] = {}
    gaps: dict[tuple, list[tuple[int, int]]] = {}
    for index, row in enumerate(rows):
        key = (row.get("usage_hour") or row.get("usage_date"), row["deployment_name"])
        metric = row["metric_prompt_tokens"] + row["metric_completion_tokens"]
        logged = row["logged_prompt_tokens"] + row["logged_completion_tokens"]
        if row.get("backend_id") == UNKNOWN_BACKEND and not row["has_metrics"]:
            unplaced[key] = unplaced.get(key, 0) + logged
        elif row["has_metrics"] and metric > logged:
            gaps.setdefault(key, []).append((index, metric - logged))
    return {
        index: min(gap, unplaced[key]) for key, resources in gaps.items() if key in unplaced for index, gap in resources
    }


def judge(rows: pa.Table, policy: QualityPolicy) -> list[dict]:
    """Rows with metric_* and logged_* token columns, plus the gap, its percent and a verdict.

    `unplaced_tokens` is how much of the row's gap its name's logged tokens with no known backend can
    explain (see `_unplaced_shares`). `unattributed_percent` is the whole gap over the metric tokens (what
    its name says: unattributed_tokens / metric_tokens); `unexplained_percent` deducts `unplaced_tokens`
    ((unattributed_tokens - unplaced_tokens) / metric_tokens), and is what the verdict judges."""
    records = rows.to_pylist()
    shares = _unplaced_shares(records)
    judged = []
    for index, row in enumerate(records):
        metric = row["metric_prompt_tokens"] + row["metric_completion_tokens"]
        logged = row["logged_prompt_tokens"] + row["logged_completion_tokens"]
        gap = metric - logged
        unplaced = shares.get(index, 0)
        unexplained = gap - unplaced
        percent = round(100.0 * unexplained / metric, 3) if metric else None
        whole_percent = round(100.0 * gap / metric, 3) if metric else None
        if row.get("backend_id") == UNKNOWN_BACKEND and not row["has_metrics"]:
            verdict = UNPLACED
        elif not row["has_metrics"]:
            verdict = NO_METRICS
        elif metric < policy.reconciliation_min_tokens:
            verdict = TOO_SMALL
        elif percent is None:  # metered nothing (a minimum of 0 judges it): only the logged tokens count
            verdict = (
                BLOCK
                if abs(gap) > policy.reconciliation_block_tokens
                else WARN
                if abs(gap) > policy.reconciliation_warn_tokens
                else OK
            )
        elif (
            abs(percent) > policy.reconciliation_block_percent and abs(unexplained) > policy.reconciliation_block_tokens
        ):
            verdict = BLOCK
        elif abs(percent) > policy.reconciliation_warn_percent and abs(unexplained) > policy.reconciliation_warn_tokens:
            verdict = WARN
        else:
            verdict = OK
        judged.append(
            {
                **row,
                "metric_tokens": metric,
                "logged_tokens": logged,
                "unattributed_prompt_tokens": row["metric_prompt_tokens"] - row["logged_prompt_tokens"],
                "unattributed_completion_tokens": row["metric_completion_tokens"] - row["logged_completion_tokens"],
                "unattributed_tokens": gap,
                "unplaced_tokens": unplaced,
                "unattributed_percent": whole_percent,
                "unexplained_percent": percent,
                "verdict": verdict,
            }
        )
    return judged


def describe(row: dict, period: str) -> str:
    unplaced = row.get("unplaced_tokens") or 0
    of_which = f", up to {unplaced:,} of it logged with no known backend" if unplaced else ""
    return (
        f"{where(row)} {period}: metrics {row['metric_tokens']:,} tokens, APIM logged "
        f"{row['logged_tokens']:,}, unattributed {row['unattributed_tokens']:,} ({row['unattributed_percent']}%)"
        f"{of_which}: {row['unexplained_percent']}% unexplained"
        if unplaced
        else f"{where(row)} {period}: metrics {row['metric_tokens']:,} tokens, APIM logged "
        f"{row['logged_tokens']:,}, unattributed {row['unattributed_tokens']:,} ({row['unattributed_percent']}%)"
    )


def where(row: dict) -> str:
    """A deployment and the backend (resource) it is on, as messages name it."""
    backend = row.get("backend_id")
    return f"{row['deployment_name']} ({backend})" if backend else row["deployment_name"]


def with_period(rows: list[dict], period_of) -> list[dict]:
    """Judged rows, each with the period it judges as text (for messages and check tables)."""
    return [{**row, "period": period_of(row)} for row in rows]


def hour_period(row: dict) -> str:
    return f"{row['usage_hour']:%Y-%m-%d %H:00}"


def reconcile_hour(
    lake: Lake,
    hour: datetime,
    known_deployments: list[str],
    topology: BackendTopology = NO_TOPOLOGY,
    database=None,
) -> pa.Table:
    """One hour's reconciliation per backend (resource) and deployment: the metrics against the tokens
    logged in the hour, which the attribution wrote. `database`: a `sql.shared_database()` to work in.
    Raises TopologyError when metrics without a resource id name a deployment several backends serve."""
    con = sql.connect(database)
    try:
        table = sql.run_models(
            con,
            [HOURLY_MODEL],
            relations={
                "hourly_logged_tokens": lake.relation(keys.hour_key(keys.LOGGED_TOKENS, hour)),
                "raw_deployment_metrics": lake.relation(
                    keys.hour_key(keys.RAW_METRICS, hour), DEPLOYMENT_METRICS_SCHEMA
                ),
                **topology.relations(),
            },
            params=hour_params(hour, known_deployments),
        )
    finally:
        con.close()
    unplaced = sorted({r["deployment_name"] for r in table.to_pylist() if r["backend_id"] is None})
    if unplaced:
        raise TopologyError(
            f"the metrics of {hour:%Y-%m-%d %H:00} name deployment(s) {', '.join(unplaced)} without a resource id, "
            "and several backends serve that name: export the metrics with their ResourceId column (Log "
            "Analytics' AzureMetrics table has it; the folder source reads it from each metric line), so each "
            "resource's tokens are reconciled on its own backend"
        )
    return table


DAILY_RECONCILIATION_SCHEMA = pa.schema(
    [
        ("usage_date", pa.date32()),
        ("backend_id", pa.string()),
        ("resource_id", pa.string()),
        ("deployment_name", pa.string()),
        ("has_metrics", pa.bool_()),
        *[(c, pa.int64()) for c in TOKEN_COLUMNS],
        ("billable_prompt_tokens", pa.int64()),
        ("billable_completion_tokens", pa.int64()),
        ("unattributed_prompt_tokens", pa.int64()),
        ("unattributed_completion_tokens", pa.int64()),
        ("unplaced_tokens", pa.int64()),
        ("unattributed_percent", pa.float64()),
        ("unexplained_percent", pa.float64()),
        ("day_verdict", pa.string()),
        ("worst_hour", pa.timestamp("us", tz="UTC")),
        ("worst_hour_verdict", pa.string()),
        ("worst_hour_metric_tokens", pa.int64()),
        ("worst_hour_logged_tokens", pa.int64()),
        ("worst_hour_unattributed_percent", pa.float64()),
    ]
)


def reconcile_day(lake: Lake, day: date, policy: QualityPolicy) -> tuple[pa.Table, list[dict], list[dict]]:
    """The day's per-deployment reconciliation: totals (`marts/fct_daily_reconciliation_totals`), the
    split of the gap, the day's verdict and its worst hour's; with the judged hours and days."""
    hours = pa.concat_tables([lake.read(keys.hour_key(keys.HOURLY_RECONCILIATION, h)) for h in day_hours(day)])
    con = sql.connect()
    try:
        sql.build_models(
            con,
            [],
            {"deployment_reconciliation": hours, "daily_product_usage": lake.read(keys.day_key(keys.DAILY_USAGE, day))},
        )
        totals = sql.select_model(con, DAILY_TOTALS_MODEL, {"usage_date": day})
    finally:
        con.close()
    judged_hours = with_period(judge(hours, policy), hour_period)
    judged_days = with_period(judge(totals, policy), lambda _: f"{day}")
    worst_hour = _worst_hours(judged_hours)
    table = pa.Table.from_pylist(
        [
            {
                **{
                    k: r[k]
                    for k in (
                        "usage_date",
                        "backend_id",
                        "resource_id",
                        "deployment_name",
                        "has_metrics",
                        *TOKEN_COLUMNS,
                    )
                },
                "billable_prompt_tokens": r["billable_prompt_tokens"],
                "billable_completion_tokens": r["billable_completion_tokens"],
                "unattributed_prompt_tokens": r["unattributed_prompt_tokens"],
                "unattributed_completion_tokens": r["unattributed_completion_tokens"],
                "unplaced_tokens": r["unplaced_tokens"],
                "unattributed_percent": r["unattributed_percent"],
                "unexplained_percent": r["unexplained_percent"],
                "day_verdict": r["verdict"],
                **_worst_hour_columns(worst_hour.get((r["backend_id"], r["deployment_name"]))),
            }
            for r in judged_days
        ],
        schema=DAILY_RECONCILIATION_SCHEMA,
    )
    return table, judged_hours, judged_days


def _worst_hours(judged_hours: list[dict]) -> dict[tuple[str, str], dict]:
    """Per backend and deployment, its most severe hour (then the largest unexplained gap in percent)."""
    worst: dict[tuple[str, str], dict] = {}
    for row in judged_hours:
        key = (row["backend_id"], row["deployment_name"])
        current = worst.get(key)
        if current is None or (SEVERITY[row["verdict"]], abs(row["unexplained_percent"] or 0)) > (
            SEVERITY[current["verdict"]],
            abs(current["unexplained_percent"] or 0),
        ):
            worst[key] = row
    return worst


def _worst_hour_columns(hour: dict | None) -> dict:
    hour = hour or {"usage_hour": None, "verdict": OK, "metric_tokens": 0, "logged_tokens": 0}
    return {
        "worst_hour": hour["usage_hour"],
        "worst_hour_verdict": hour["verdict"],
        "worst_hour_metric_tokens": hour["metric_tokens"],
        "worst_hour_logged_tokens": hour["logged_tokens"],
        "worst_hour_unattributed_percent": hour.get("unattributed_percent"),
    }
