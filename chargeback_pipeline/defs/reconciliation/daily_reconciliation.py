"""`daily_reconciliation` (daily): per deployment and day, metric, logged and billable tokens, the day's
verdict and its worst hour's. A blocking verdict holds the day's reports back (`publishing.gate`)."""

from collections import Counter

import dagster as dg

from chargeback_pipeline.core.reconciliation import UNPLACED, reconcile_day
from chargeback_pipeline.defs import partition_checks
from chargeback_pipeline.defs.metadata import OWNERS, log_run_totals, markdown_table, record_partition
from chargeback_pipeline.defs.partitions import Calendar, day_partition_key, days_in
from chargeback_pipeline.defs.publishing.gate import blocked_reasons
from chargeback_pipeline.defs.reconciliation import checks
from chargeback_pipeline.defs.resources import DataQualityPolicy, ObjectStoreResource
from chargeback_pipeline.sources.resource import LogSourceResource
from chargeback_pipeline.storage import keys

DAILY_RECONCILIATION_KEY = dg.AssetKey("daily_reconciliation")
PREVIEW_COLUMNS = [
    "usage_date",
    "deployment_name",
    "backend_id",
    "unattributed_percent",
    "day_verdict",
    "worst_hour_verdict",
]
# The day's tokens per resource (logged records with no known backend are inside unattributed).
TOKEN_TOTALS = ("metric_tokens", "logged_tokens", "unattributed_tokens")


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
        placed = [r for r in judged_days if r["verdict"] != UNPLACED]
        day_totals = {name: sum(r[name] for r in placed) for name in TOKEN_TOTALS}
        record_partition(
            context,
            day_partition_key(day),
            {
                "dagster/row_count": table.num_rows,
                **day_totals,
                "blocked_deployments": len(blocked_reasons(table)),
                "per_deployment": markdown_table(table.select(PREVIEW_COLUMNS), limit=30),
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
    @dg.asset(
        partitions_def=calendar.daily,
        backfill_policy=dg.BackfillPolicy.single_run(),
        deps=["deployment_reconciliation", "daily_product_usage"],
        group_name="reconciliation",
        owners=OWNERS,
        kinds={"duckdb", "parquet"},
        description=(
            "Per backend (Azure OpenAI resource), deployment and day: metric, logged and billable tokens; "
            "unattributed = metric - logged (bypassed APIM or not logged); the day's verdict and its worst "
            "hour's. A blocking verdict stops the day's report from being published."
        ),
        check_specs=[
            partition_checks.spec(
                checks.RECONCILES,
                DAILY_RECONCILIATION_KEY,
                calendar.daily,
                (
                    "Per deployment-hour and -day, unattributed tokens stay under the blocking level "
                    "(warning level: WARN). On ERROR the day's report is not published (the report asset "
                    "enforces it, so the documented override can still publish and record it)."
                ),
            )
        ],
    )
    def daily_reconciliation(
        context: dg.AssetExecutionContext,
        lake: ObjectStoreResource,
        policy: DataQualityPolicy,
        source: LogSourceResource,
    ):
        yield from reconcile_days(context, lake, policy, source)

    return daily_reconciliation
