"""`focus_export` (daily): the FOCUS 1.2 export of each published daily chargeback, for FinOps tools."""

import io
from collections import Counter
from decimal import Decimal

import dagster as dg
import pyarrow.parquet as pq

from chargeback_pipeline.core.billing.focus import FOCUS_SCHEMA, FOCUS_VERSION, to_focus
from chargeback_pipeline.defs.billing import checks
from chargeback_pipeline.defs.metadata import OWNERS, table_schema
from chargeback_pipeline.defs.partitions import Calendar, days_in
from chargeback_pipeline.defs.resources import ObjectStoreResource, PricingResource
from chargeback_pipeline.storage import keys
from chargeback_pipeline.storage.report_files import report_files

FOCUS_EXPORT_KEY = dg.AssetKey("focus_export")


def export_focus(
    context: dg.AssetExecutionContext, lake: ObjectStoreResource, reports: ObjectStoreResource, pricing: PricingResource
):
    store, target, prices = lake.lake(), reports.store(), pricing.pricing()
    published, exported, expected = [], Counter(), Counter()
    rows = 0
    for day in days_in(context.partition_time_window):
        lines = store.read(keys.day_key(keys.DAILY_CHARGEBACK, day))
        for extension, data in report_files(to_focus(lines, prices)).items():
            target.write_bytes(keys.focus_key(day, extension), data)
        read_back = pq.read_table(io.BytesIO(target.read_bytes(keys.focus_key(day, "parquet"))))
        exported.update(checks.cost_per_product(read_back, day, "SubAccountId", "BilledCost"))
        expected.update(checks.cost_per_product(lines, day, "product_id", "total_cost"))
        published.append(target.url(keys.focus_key(day, "csv")))
        rows += read_back.num_rows
    yield dg.MaterializeResult(
        metadata={
            "dagster/row_count": rows,
            "focus_version": FOCUS_VERSION,
            "billed_cost": float(sum(exported.values(), Decimal(0))),
            "focus_csv": dg.MetadataValue.path(published[-1]),
            "dagster/column_schema": table_schema(FOCUS_SCHEMA),
        }
    )
    yield checks.totals_match(FOCUS_EXPORT_KEY, checks.FOCUS_MATCHES_CHARGEBACK, exported, expected)


def focus_export_asset(calendar: Calendar) -> dg.AssetsDefinition:
    @dg.asset(
        partitions_def=calendar.daily,
        backfill_policy=dg.BackfillPolicy.single_run(),
        deps=["daily_chargeback"],
        group_name="costs",
        owners=OWNERS,
        kinds={"parquet", "csv"},
        description=(
            f"The day's chargeback as a FOCUS {FOCUS_VERSION} cost and usage dataset (one row per chargeback "
            "line, custom columns prefixed x_): `daily/usage_date=YYYY-MM-DD/focus.csv` and `.parquet`. Built "
            "from the published chargeback only, so a day held back by reconciliation gets no new export either."
        ),
        check_specs=[
            dg.AssetCheckSpec(
                checks.FOCUS_MATCHES_CHARGEBACK,
                asset=FOCUS_EXPORT_KEY,
                description="The published export, read back, bills exactly the chargeback's cost per product and day.",
            )
        ],
    )
    def focus_export(
        context: dg.AssetExecutionContext,
        lake: ObjectStoreResource,
        reports: ObjectStoreResource,
        pricing: PricingResource,
    ):
        yield from export_focus(context, lake, reports, pricing)

    return focus_export
