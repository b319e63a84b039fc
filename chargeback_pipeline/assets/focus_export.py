"""The FOCUS 1.2 export of each published daily chargeback, for FinOps tools."""

import io
from collections import Counter
from datetime import date
from decimal import Decimal

import dagster as dg
import pyarrow.parquet as pq

from chargeback_pipeline import cost_checks
from chargeback_pipeline.assets.costs import DAILY_CHARGEBACK, daily_chargeback
from chargeback_pipeline.assets.raw import OWNERS
from chargeback_pipeline.focus import FOCUS_SCHEMA, FOCUS_VERSION, to_focus
from chargeback_pipeline.lake import day_key
from chargeback_pipeline.metadata import table_schema
from chargeback_pipeline.partitions import daily_partitions, days_in
from chargeback_pipeline.report_files import report_files
from chargeback_pipeline.resources import ObjectStoreResource, PricingResource

FOCUS_EXPORT = "focus_export"


def focus_key(day: date, extension: str) -> str:
    return f"daily/usage_date={day.isoformat()}/focus.{extension}"


@dg.asset(
    partitions_def=daily_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    deps=[daily_chargeback],
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
            cost_checks.FOCUS_MATCHES_CHARGEBACK,
            asset=FOCUS_EXPORT,
            description="The published export, read back, bills exactly the chargeback's cost per product and day.",
        )
    ],
)
def focus_export(
    context: dg.AssetExecutionContext, lake: ObjectStoreResource, reports: ObjectStoreResource, pricing: PricingResource
):
    store, target, prices = lake.lake(), reports.store(), pricing.pricing()
    published, exported, expected = [], Counter(), Counter()
    rows = 0
    for day in days_in(context.partition_time_window):
        lines = store.read(day_key(DAILY_CHARGEBACK, day))
        for extension, data in report_files(to_focus(lines, prices)).items():
            target.write_bytes(focus_key(day, extension), data)
        read_back = pq.read_table(io.BytesIO(target.read_bytes(focus_key(day, "parquet"))))
        exported.update(cost_checks.cost_per_product(read_back, day, "SubAccountId", "BilledCost"))
        expected.update(cost_checks.cost_per_product(lines, day, "product_id", "total_cost"))
        published.append(target.url(focus_key(day, "csv")))
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
    yield cost_checks.totals_match(dg.AssetKey(FOCUS_EXPORT), cost_checks.FOCUS_MATCHES_CHARGEBACK, exported, expected)
