"""`daily_reconciliation` (daily): per deployment and day, metric, logged and billable tokens, the day's
verdict and its worst hour's. A blocking verdict holds the day's reports back (`publishing.gate`)."""

from collections import Counter

import dagster as dg

from chargeback_pipeline.core.reconciliation import reconcile_day
from chargeback_pipeline.defs import partition_checks
from chargeback_pipeline.defs.metadata import log_run_totals, markdown_rows, record_partition
from chargeback_pipeline.defs.partitioned_asset import partitioned_asset
from chargeback_pipeline.defs.partitions import Calendar, day_partition_key, days_in
from chargeback_pipeline.defs.publishing.gate import blocked_reasons
from chargeback_pipeline.defs.reconciliation import checks
from chargeback_pipeline.defs.resources import DataQualityPolicy, ObjectStoreResource
from chargeback_pipeline.sources.resource import LogSourceResource
from chargeback_pipeline.storage import keys

DAILY_RECONCILIATION_KEY = dg.AssetKey("daily_reconciliation")
# The preview shows every quantity its percentages are computed from (the file's own columns, summed).
PREVIEW_COLUMNS = (
    "usage_date", "deployment_name", "backend_id", "metric_tokens", "logged_tokens", "unattributed_tokens",
    "unattributed_percent", "unplaced_tokens", "unexplained_percent", "day_verdict", "worst_hour_verdict",
)  # fmt: skip


def preview_rows(table) -> list[dict]:
    """The day's file per deployment, its token pairs summed: metric, logged, unattributed (= metric -
    logged) and unplaced tokens beside the two percentages computed from them."""
    rows = []
    for r in table.to_pylist():
        metric = r["metric_prompt_tokens"] + r["metric_completion_tokens"]
        logged = r["logged_prompt_tokens"] + r["logged_completion_tokens"]
        full = {**r, "metric_tokens": metric, "logged_tokens": logged, "unattributed_tokens": metric - logged}
        rows.append({name: full[name] for name in PREVIEW_COLUMNS})
    return rows


def reconcile_days(
    context: dg.AssetExecutionContext, lake: ObjectStoreResource, policy: DataQualityPolicy, source: LogSourceResource
):
    """Reconcile every day of the run; each day's materialization carries its own token totals and
    per-deployment preview, and the check judges each day on its own hours and deployments."""
    store = lake.lake()
    off = source.reconciliation_off_reason()
    judged, totals = [], Counter()
    days = days_in(context.partition_time_window)
    for day in days:
        table, judged_hours, judged_days = reconcile_day(store, day, policy)
        store.write(keys.day_key(keys.DAILY_RECONCILIATION, day), table)
        day_totals = checks.token_totals(judged_days)
        record_partition(
            context,
            day_partition_key(day),
            {
                "dagster/row_count": table.num_rows,
                **day_totals,
                "blocked_deployments": len(blocked_reasons(table)),
                "per_deployment": markdown_rows(preview_rows(table), limit=30),
            },
        )
        totals.update(day_totals)
        check = (
            checks.not_reconciled(DAILY_RECONCILIATION_KEY, off, gates_publication=True)
            if off
            else checks.reconciliation(
                DAILY_RECONCILIATION_KEY, hours=judged_hours, days=judged_days, gates_publication=True
            )
        )
        judged.append((day_partition_key(day), check))
    log_run_totals(context, "daily_reconciliation", len(days), dict(totals))
    yield dg.MaterializeResult()
    yield from partition_checks.evaluations(context, judged)


def daily_reconciliation_asset(calendar: Calendar) -> dg.AssetsDefinition:
    @partitioned_asset(
        DAILY_RECONCILIATION_KEY,
        calendar.daily,
        deps=["deployment_reconciliation", "daily_product_usage"],
        group_name="reconciliation",
        kinds={"duckdb", "parquet"},
        description=(
            "Per backend (Azure OpenAI resource), deployment and day: metric, logged and billable tokens; "
            "unattributed = metric - logged (bypassed APIM or not logged), unattributed_percent = unattributed / "
            "metric; unplaced_tokens = how much of the gap logged records with no known backend can explain, "
            "unexplained_percent = (unattributed - unplaced) / metric, which the verdicts judge; the day's "
            "verdict and its worst hour's. A blocking verdict stops the day's report from being published."
        ),
        checks={
            checks.RECONCILES: (
                checks.PUBLICATION_GATE
                + (
                    "Per deployment-hour and -day, unexplained unattributed tokens stay under the blocking level "
                    "(warning level: WARN)."
                )
            ),
        },
    )
    def daily_reconciliation(
        context: dg.AssetExecutionContext,
        lake: ObjectStoreResource,
        policy: DataQualityPolicy,
        source: LogSourceResource,
    ):
        yield from reconcile_days(context, lake, policy, source)

    return daily_reconciliation
