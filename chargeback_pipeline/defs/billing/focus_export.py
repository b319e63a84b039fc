"""`focus_export` (daily): the FOCUS 1.2 export of each published daily chargeback, for FinOps tools."""

import io
from decimal import Decimal

import dagster as dg
import pyarrow.parquet as pq

from chargeback_pipeline.core.billing.focus import FOCUS_VERSION, to_focus
from chargeback_pipeline.defs import partition_checks
from chargeback_pipeline.defs.billing import checks
from chargeback_pipeline.defs.metadata import OWNERS, log_run_totals, money, money_text, record_partition
from chargeback_pipeline.defs.partitions import Calendar, day_partition_key, days_in
from chargeback_pipeline.defs.resources import ObjectStoreResource, PricingResource
from chargeback_pipeline.storage import keys
from chargeback_pipeline.storage.report_files import report_files

FOCUS_EXPORT_KEY = dg.AssetKey("focus_export")


def export_focus(
    context: dg.AssetExecutionContext, lake: ObjectStoreResource, reports: ObjectStoreResource, pricing: PricingResource
):
    """Export every day of the run; each day's materialization carries its own rows, billed cost and file,
    and the check compares each day's export, read back, with its chargeback."""
    store, target, prices = lake.lake(), reports.store(), pricing.pricing()
    minor_unit, currency = prices.currency_minor_unit, prices.currency
    judged, rows, billed = [], 0, Decimal(0)
    for day in days_in(context.partition_time_window):
        lines = store.read(keys.day_key(keys.DAILY_CHARGEBACK, day))
        for extension, data in report_files(to_focus(lines, prices), prices.currency_minor_unit).items():
            target.write_bytes(keys.focus_key(day, extension), data)
        read_back = pq.read_table(io.BytesIO(target.read_bytes(keys.focus_key(day, "parquet"))))
        exported = checks.cost_per_product(read_back, day, "SubAccountId", "BilledCost")
        expected = checks.cost_per_product(lines, day, "product_id", "total_cost")
        day_billed = sum(exported.values(), Decimal(0))
        record_partition(
            context,
            day_partition_key(day),
            {
                "dagster/row_count": read_back.num_rows,
                "billed_cost": money(day_billed, minor_unit),
                "currency": currency,
                "focus_csv": dg.MetadataValue.path(target.url(keys.focus_key(day, "csv"))),
            },
        )
        judged.append(
            (
                day_partition_key(day),
                checks.totals_match(
                    FOCUS_EXPORT_KEY, checks.FOCUS_MATCHES_CHARGEBACK, exported, expected, currency=currency
                ),
            )
        )
        rows += read_back.num_rows
        billed += day_billed
    log_run_totals(
        context, "focus_export", len(judged), {"rows": rows, "billed cost": money_text(billed, currency, minor_unit)}
    )
    yield dg.MaterializeResult()
    yield from partition_checks.evaluations(context, judged)


def focus_export_asset(calendar: Calendar) -> dg.AssetsDefinition:
    @dg.asset(
        partitions_def=calendar.daily,
        backfill_policy=dg.BackfillPolicy.single_run(),
        deps=["daily_chargeback"],
        group_name="costs",
        owners=OWNERS,
        kinds={"parquet", "csv"},
        metadata={"focus_version": FOCUS_VERSION},
        description=(
            f"The day's chargeback as a FOCUS {FOCUS_VERSION} cost and usage dataset (one row per chargeback "
            "line, custom columns prefixed x_): `daily/usage_date=YYYY-MM-DD/focus.csv` and `.parquet`. Built "
            "from the published chargeback only, so a day held back by reconciliation gets no new export either."
        ),
        check_specs=[
            partition_checks.spec(
                checks.FOCUS_MATCHES_CHARGEBACK,
                FOCUS_EXPORT_KEY,
                calendar.daily,
                "The day's published export, read back, bills exactly the chargeback's cost per product.",
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
