"""`billed_statement` (monthly): each product's month summed from its `billed_chargeback` days, with how
many of them are actual (the Cost Management export) and how many still an estimate. Re-rolled by the
monthly rollup sensor whenever one of its days is republished (a new export run covering or restating it)."""

from decimal import Decimal

import dagster as dg
import pyarrow as pa

from chargeback_pipeline.core.billing.cost_basis import BILLED_CHARGEBACK_SCHEMA, billed_statement
from chargeback_pipeline.core.periods import days_of_month
from chargeback_pipeline.defs.cost_export.billed_chargeback import BILLED_CHARGEBACK_KEY
from chargeback_pipeline.defs.metadata import OWNERS, markdown_table, money_value, record_partition
from chargeback_pipeline.defs.partitions import Calendar, month_partition_key, months_in
from chargeback_pipeline.defs.resources import ObjectStoreResource, PricingResource
from chargeback_pipeline.storage import keys
from chargeback_pipeline.storage.report_files import report_files


def billed_statement_asset(calendar: Calendar) -> dg.AssetsDefinition:
    @dg.asset(
        name="billed_statement",
        partitions_def=calendar.monthly,
        backfill_policy=dg.BackfillPolicy.single_run(),
        deps=[BILLED_CHARGEBACK_KEY],
        group_name="costs",
        owners=OWNERS,
        kinds={"parquet", "csv"},
        description=(
            "Per product and month: estimated, effective (amortized) and billed cost summed from the days' "
            "billed_chargeback, with the number of days that are actual (the Cost Management export) and still "
            "an estimate. Published as `monthly/month=YYYY-MM/billed_statement.{csv,parquet}`."
        ),
    )
    def billed_statement_of_month(
        context: dg.AssetExecutionContext,
        lake: ObjectStoreResource,
        reports: ObjectStoreResource,
        pricing: PricingResource,
    ) -> dg.MaterializeResult:
        prices = pricing.pricing()
        store, target, minor_unit, currency = lake.lake(), reports.store(), prices.currency_minor_unit, prices.currency
        for month in months_in(context.partition_time_window):
            present = [
                day for day in days_of_month(month) if store.store.exists(keys.day_key(keys.BILLED_CHARGEBACK, day))
            ]
            days = [store.read(keys.day_key(keys.BILLED_CHARGEBACK, day), BILLED_CHARGEBACK_SCHEMA) for day in present]
            statement = billed_statement(
                month, pa.concat_tables(days) if days else BILLED_CHARGEBACK_SCHEMA.empty_table()
            )
            for extension, data in report_files(statement, minor_unit).items():
                target.write_bytes(keys.billed_statement_key(month, extension), data)
            record_partition(
                context,
                month_partition_key(month),
                {
                    "dagster/row_count": statement.num_rows,
                    "effective_cost": money_value(
                        sum(statement["effective_cost"].to_pylist(), Decimal(0)), currency, minor_unit
                    ),
                    "billed_cost": money_value(
                        sum(statement["billed_cost"].to_pylist(), Decimal(0)), currency, minor_unit
                    ),
                    "days_covered": len(present),
                    "billed_statement": markdown_table(statement.drop_columns(["month"]), limit=20),
                },
            )
        return dg.MaterializeResult()

    return billed_statement_of_month
