"""Reconciliation: tokens APIM logged against the tokens each deployment itself counted (Azure Monitor).

Hourly per deployment, then per day with the day's verdict, which gates publication of the report.
"""

from collections import defaultdict
from datetime import date

import dagster as dg
import pyarrow as pa

from chargeback_pipeline import checks, sql
from chargeback_pipeline.assets.raw import OWNERS, RAW_METRICS, raw_deployment_metrics
from chargeback_pipeline.assets.usage import (
    ATTRIBUTED_KEY,
    DAILY_USAGE,
    LOGGED_TOKENS,
    daily_product_usage,
    day_hours,
    hour_params,
)
from chargeback_pipeline.content_hash import record_hour_content, record_run_summary
from chargeback_pipeline.lake import Lake, day_key, hour_key
from chargeback_pipeline.metadata import markdown_table, table_schema
from chargeback_pipeline.partitions import daily_partitions, days_in, hourly_partitions, hours_in
from chargeback_pipeline.reconciliation import BLOCK, NO_METRICS, OK, TOO_SMALL, WARN, ReconciliationPolicy, judge
from chargeback_pipeline.resources import DataQualityPolicy, ObjectStoreResource
from chargeback_pipeline.schemas import DEPLOYMENT_METRICS_SCHEMA

HOURLY_RECONCILIATION = "deployment_reconciliation"
DAILY_RECONCILIATION = "daily_reconciliation"
SEVERITY = {OK: 0, TOO_SMALL: 0, NO_METRICS: 1, WARN: 2, BLOCK: 3}
TOKEN_COLUMNS = ("metric_prompt_tokens", "metric_completion_tokens", "logged_prompt_tokens", "logged_completion_tokens")


def reconciliation_policy(policy: DataQualityPolicy) -> ReconciliationPolicy:
    return ReconciliationPolicy(
        warn_percent=policy.reconciliation_warn_percent,
        block_percent=policy.reconciliation_block_percent,
        warn_tokens=policy.reconciliation_warn_tokens,
        block_tokens=policy.reconciliation_block_tokens,
        min_tokens=policy.reconciliation_min_tokens,
    )


def reconcile_hour(lake: Lake, hour, known_deployments: list[str], database=None) -> pa.Table:
    """One hour's per-deployment reconciliation: the metrics against the tokens logged in the hour, which
    the attribution wrote. `database`: a `sql.shared_database()` to work in."""
    con = sql.connect(database)
    try:
        return sql.run_models(
            con,
            ["marts/fct_deployment_reconciliation"],
            relations={
                "hourly_logged_tokens": lake.relation(hour_key(LOGGED_TOKENS, hour)),
                "raw_deployment_metrics": lake.relation(hour_key(RAW_METRICS, hour), DEPLOYMENT_METRICS_SCHEMA),
            },
            params=hour_params(hour, known_deployments),
        )
    finally:
        con.close()


def _with_period(rows: list[dict], period_of) -> list[dict]:
    return [{**row, "period": period_of(row)} for row in rows]


@dg.asset(
    partitions_def=hourly_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    deps=[dg.AssetDep(ATTRIBUTED_KEY), raw_deployment_metrics],
    group_name="reconciliation",
    owners=OWNERS,
    kinds={"duckdb", "parquet"},
    description=(
        "Per deployment and hour: metric tokens (Azure Monitor ProcessedPromptTokens / GeneratedTokens) "
        "against tokens APIM logged, bucketed by the LLM record's own time (the attribution's de-duplicated "
        "LLM records, every logged request counted). The gap is traffic that bypassed APIM or was not logged."
    ),
    check_specs=[
        dg.AssetCheckSpec(
            checks.RECONCILES,
            asset=HOURLY_RECONCILIATION,
            description="Per deployment-hour, unattributed tokens stay under the warning and blocking levels.",
        )
    ],
)
def deployment_reconciliation(context: dg.AssetExecutionContext, lake: ObjectStoreResource, policy: DataQualityPolicy):
    store = lake.lake()
    judged = []
    with sql.shared_database() as database:
        hours = hours_in(context.partition_time_window)
        for hour in hours:
            table = reconcile_hour(store, hour, policy.known_deployments, database)
            digest = store.write(hour_key(HOURLY_RECONCILIATION, hour), table)
            record_hour_content(context, hour, digest, metadata={"dagster/row_count": table.num_rows})
            judged += _with_period(
                judge(table, reconciliation_policy(policy)), lambda r: f"{r['usage_hour']:%Y-%m-%d %H:00}"
            )
    record_run_summary(
        context,
        hours,
        {
            "run_rows": len(judged),
            "metric_tokens": sum(r["metric_tokens"] for r in judged),
            "logged_tokens": sum(r["logged_tokens"] for r in judged),
            "unattributed_tokens": sum(r["unattributed_tokens"] for r in judged),
            "dagster/column_schema": table_schema(table.schema),
        },
    )
    yield dg.MaterializeResult()
    yield checks.reconciliation(dg.AssetKey(HOURLY_RECONCILIATION), hours=judged, days=[], blocking=False)


def reconcile_day(lake: Lake, day: date, policy: ReconciliationPolicy) -> tuple[pa.Table, list[dict], list[dict]]:
    """The day's per-deployment reconciliation: totals, the split of the gap, and the judged hours."""
    hours = pa.concat_tables([lake.read(hour_key(HOURLY_RECONCILIATION, hour)) for hour in day_hours(day)])
    judged_hours = _with_period(judge(hours, policy), lambda r: f"{r['usage_hour']:%Y-%m-%d %H:00}")
    usage = lake.read(day_key(DAILY_USAGE, day))
    totals = defaultdict(
        lambda: dict.fromkeys((*TOKEN_COLUMNS, "billable_prompt_tokens", "billable_completion_tokens"), 0)
    )
    has_metrics = defaultdict(bool)
    for row in hours.to_pylist():
        for column in TOKEN_COLUMNS:
            totals[row["deployment_name"]][column] += row[column]
        has_metrics[row["deployment_name"]] |= row["has_metrics"]
    for row in usage.to_pylist():
        if row["deployment_name"] in totals:
            totals[row["deployment_name"]]["billable_prompt_tokens"] += row["prompt_tokens"]
            totals[row["deployment_name"]]["billable_completion_tokens"] += row["completion_tokens"]
    day_rows = [
        {"usage_date": day, "deployment_name": name, "has_metrics": has_metrics[name], **values}
        for name, values in sorted(totals.items())
    ]
    judged_days = _with_period(judge(pa.Table.from_pylist(day_rows), policy) if day_rows else [], lambda r: f"{day}")
    worst_hour: dict[str, dict] = {}
    for row in judged_hours:
        current = worst_hour.get(row["deployment_name"])
        if current is None or (SEVERITY[row["verdict"]], abs(row["unattributed_percent"] or 0)) > (
            SEVERITY[current["verdict"]],
            abs(current["unattributed_percent"] or 0),
        ):
            worst_hour[row["deployment_name"]] = row
    table = pa.Table.from_pylist(
        [
            {
                **{k: r[k] for k in ("usage_date", "deployment_name", "has_metrics", *TOKEN_COLUMNS)},
                "billable_prompt_tokens": r["billable_prompt_tokens"],
                "billable_completion_tokens": r["billable_completion_tokens"],
                "unattributed_prompt_tokens": r["unattributed_prompt_tokens"],
                "unattributed_completion_tokens": r["unattributed_completion_tokens"],
                "unattributed_percent": r["unattributed_percent"],
                "day_verdict": r["verdict"],
                **_worst_hour_columns(worst_hour.get(r["deployment_name"])),
            }
            for r in judged_days
        ],
        schema=DAILY_RECONCILIATION_SCHEMA,
    )
    return table, judged_hours, judged_days


def _worst_hour_columns(hour: dict | None) -> dict:
    hour = hour or {"usage_hour": None, "verdict": OK, "metric_tokens": 0, "logged_tokens": 0}
    return {
        "worst_hour": hour["usage_hour"],
        "worst_hour_verdict": hour["verdict"],
        "worst_hour_metric_tokens": hour["metric_tokens"],
        "worst_hour_logged_tokens": hour["logged_tokens"],
        "worst_hour_unattributed_percent": hour.get("unattributed_percent"),
    }


DAILY_RECONCILIATION_SCHEMA = pa.schema(
    [
        ("usage_date", pa.date32()),
        ("deployment_name", pa.string()),
        ("has_metrics", pa.bool_()),
        *[(c, pa.int64()) for c in TOKEN_COLUMNS],
        ("billable_prompt_tokens", pa.int64()),
        ("billable_completion_tokens", pa.int64()),
        ("unattributed_prompt_tokens", pa.int64()),
        ("unattributed_completion_tokens", pa.int64()),
        ("unattributed_percent", pa.float64()),
        ("day_verdict", pa.string()),
        ("worst_hour", pa.timestamp("us", tz="UTC")),
        ("worst_hour_verdict", pa.string()),
        ("worst_hour_metric_tokens", pa.int64()),
        ("worst_hour_logged_tokens", pa.int64()),
        ("worst_hour_unattributed_percent", pa.float64()),
    ]
)


@dg.asset(
    partitions_def=daily_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    deps=[dg.AssetDep(HOURLY_RECONCILIATION), daily_product_usage],
    group_name="reconciliation",
    owners=OWNERS,
    kinds={"duckdb", "parquet"},
    description=(
        "Per deployment and day: metric, logged and billable tokens; unattributed = metric - logged "
        "(bypassed APIM or not logged); the day's verdict and its worst hour's. A blocking verdict stops "
        "the day's report from being published."
    ),
    check_specs=[
        dg.AssetCheckSpec(
            checks.RECONCILES,
            asset=DAILY_RECONCILIATION,
            description=(
                "Per deployment-hour and -day, unattributed tokens stay under the blocking level "
                "(warning level: WARN). On ERROR the day's report is not published (the report asset "
                "enforces it, so the documented override can still publish and record it)."
            ),
        )
    ],
)
def daily_reconciliation(context: dg.AssetExecutionContext, lake: ObjectStoreResource, policy: DataQualityPolicy):
    store = lake.lake()
    tables, hours, days = [], [], []
    for day in days_in(context.partition_time_window):
        table, judged_hours, judged_days = reconcile_day(store, day, reconciliation_policy(policy))
        store.write(day_key(DAILY_RECONCILIATION, day), table)
        tables.append(table)
        hours += judged_hours
        days += judged_days
    table = pa.concat_tables(tables)
    yield dg.MaterializeResult(
        metadata={
            "dagster/row_count": table.num_rows,
            "dagster/column_schema": table_schema(table.schema),
            "per_deployment": markdown_table(
                table.select(
                    ["usage_date", "deployment_name", "unattributed_percent", "day_verdict", "worst_hour_verdict"]
                ),
                limit=30,
            ),
        }
    )
    yield checks.reconciliation(dg.AssetKey(DAILY_RECONCILIATION), hours=hours, days=days, blocking=True)
