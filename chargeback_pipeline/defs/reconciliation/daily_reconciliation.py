"""`daily_reconciliation` (daily): per deployment and day, metric, logged and billable tokens, the day's
verdict and its worst hour's. A blocking verdict holds the day's reports back (`publishing.gate`)."""

import dagster as dg
import pyarrow as pa

from chargeback_pipeline.core.reconciliation import reconcile_day
from chargeback_pipeline.defs.metadata import OWNERS, markdown_table, table_schema
from chargeback_pipeline.defs.partitions import Calendar, days_in
from chargeback_pipeline.defs.reconciliation import checks
from chargeback_pipeline.defs.resources import DataQualityPolicy, ObjectStoreResource
from chargeback_pipeline.storage import keys

DAILY_RECONCILIATION_KEY = dg.AssetKey("daily_reconciliation")
PREVIEW_COLUMNS = ["usage_date", "deployment_name", "unattributed_percent", "day_verdict", "worst_hour_verdict"]


def reconcile_days(context: dg.AssetExecutionContext, lake: ObjectStoreResource, policy: DataQualityPolicy):
    store = lake.lake()
    tables, hours, days = [], [], []
    for day in days_in(context.partition_time_window):
        table, judged_hours, judged_days = reconcile_day(store, day, policy)
        store.write(keys.day_key(keys.DAILY_RECONCILIATION, day), table)
        tables.append(table)
        hours += judged_hours
        days += judged_days
    table = pa.concat_tables(tables)
    yield dg.MaterializeResult(
        metadata={
            "dagster/row_count": table.num_rows,
            "dagster/column_schema": table_schema(table.schema),
            "per_deployment": markdown_table(table.select(PREVIEW_COLUMNS), limit=30),
        }
    )
    yield checks.reconciliation(DAILY_RECONCILIATION_KEY, hours=hours, days=days, blocking=True)


def daily_reconciliation_asset(calendar: Calendar) -> dg.AssetsDefinition:
    @dg.asset(
        partitions_def=calendar.daily,
        backfill_policy=dg.BackfillPolicy.single_run(),
        deps=["deployment_reconciliation", "daily_product_usage"],
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
                asset=DAILY_RECONCILIATION_KEY,
                description=(
                    "Per deployment-hour and -day, unattributed tokens stay under the blocking level "
                    "(warning level: WARN). On ERROR the day's report is not published (the report asset "
                    "enforces it, so the documented override can still publish and record it)."
                ),
            )
        ],
    )
    def daily_reconciliation(context: dg.AssetExecutionContext, lake: ObjectStoreResource, policy: DataQualityPolicy):
        yield from reconcile_days(context, lake, policy)

    return daily_reconciliation
