"""`daily_product_usage` (daily): per-product usage of each day from its 24 attributed hours, and the check
that the day adds up to its hours."""

from collections import Counter

import dagster as dg
import pyarrow as pa
import pyarrow.compute as pc

from chargeback_pipeline.core.attribution import rollup_day
from chargeback_pipeline.core.reports import top_products
from chargeback_pipeline.defs import partition_checks
from chargeback_pipeline.defs.attribution import checks
from chargeback_pipeline.defs.metadata import log_run_totals, markdown_table, record_partition
from chargeback_pipeline.defs.partitioned_asset import partitioned_asset
from chargeback_pipeline.defs.partitions import Calendar, day_partition_key, days_in
from chargeback_pipeline.defs.resources import ObjectStoreResource
from chargeback_pipeline.storage import keys

DAILY_USAGE_KEY = dg.AssetKey("daily_product_usage")
TOTAL_COLUMNS = ("total_tokens", "calls", "failed_calls")


def roll_up_days(context: dg.AssetExecutionContext, lake: ObjectStoreResource):
    """Roll up every day of the run; each day's materialization carries its own totals and top products,
    and the check judges each day against its own 24 hours."""
    store = lake.lake()
    judged, run_totals = [], Counter()
    days = days_in(context.partition_time_window)
    for day in days:
        usage, hourly_totals = rollup_day(store, day)
        store.write(keys.day_key(keys.DAILY_USAGE, day), usage)
        daily_totals = {k: pc.sum(usage[k].cast(pa.int64())).as_py() or 0 for k in TOTAL_COLUMNS}
        record_partition(
            context,
            day_partition_key(day),
            {
                "dagster/row_count": usage.num_rows,
                **daily_totals,
                "products": len(pc.unique(usage["product_id"])),
                "top_products": markdown_table(top_products(usage)),
            },
        )
        judged.append(
            (day_partition_key(day), checks.daily_equals_hourly(DAILY_USAGE_KEY, daily_totals, dict(hourly_totals)))
        )
        run_totals.update(daily_totals)
    log_run_totals(context, "daily_product_usage", len(days), dict(run_totals))
    yield dg.MaterializeResult()
    yield from partition_checks.evaluations(context, judged)


def daily_product_usage_asset(calendar: Calendar) -> dg.AssetsDefinition:
    @partitioned_asset(
        DAILY_USAGE_KEY,
        calendar.daily,
        deps=["attributed_requests"],
        group_name="usage",
        kinds={"duckdb", "parquet"},
        description=(
            "Per-product usage of the day (UTC) by subscription, model, deployment and backend: prompt, "
            "completion and total tokens and calls of billable requests, failed calls, first and last seen."
        ),
        checks={
            checks.DAILY_EQUALS_HOURLY: (
                "Token, call and failed-call totals equal the sum of the day's 24 attributed hours."
            ),
        },
    )
    def daily_product_usage(context: dg.AssetExecutionContext, lake: ObjectStoreResource):
        yield from roll_up_days(context, lake)

    return daily_product_usage
