"""`monthly_statement` (monthly): each product's tokens and costs of a calendar month, summed exactly
from its published daily chargebacks."""

import io
from collections import Counter
from decimal import Decimal

import dagster as dg
import pyarrow as pa
import pyarrow.parquet as pq

from chargeback_pipeline.core.billing import statements
from chargeback_pipeline.core.cost_inputs import published_days
from chargeback_pipeline.defs.billing import checks
from chargeback_pipeline.defs.metadata import OWNERS, markdown_table, table_schema
from chargeback_pipeline.defs.partitions import Calendar, months_in
from chargeback_pipeline.defs.resources import ObjectStoreResource
from chargeback_pipeline.storage import keys
from chargeback_pipeline.storage.report_files import report_files

MONTHLY_STATEMENT_KEY = dg.AssetKey("monthly_statement")
PREVIEW_COLUMNS = ["product_id", "total_cost", "ptu_usage_cost", "ptu_unused_cost", "paygo_cost", "days_covered"]


def publish_statements(context: dg.AssetExecutionContext, lake: ObjectStoreResource, reports: ObjectStoreResource):
    store, target = lake.lake(), reports.store()
    published, missing, tables = [], [], []
    stated, expected = Counter(), Counter()
    for month in months_in(context.partition_time_window):
        lines, days_missing = published_days(store, month)
        statement = statements.monthly_statement(lines, month)
        for extension, data in report_files(statement).items():
            target.write_bytes(keys.statement_key(month, extension), data)
        read_back = pq.read_table(io.BytesIO(target.read_bytes(keys.statement_key(month, "parquet"))))
        stated.update(checks.cost_per_product(read_back, month, "product_id", "total_cost"))
        expected.update(checks.cost_per_product(lines, month, "product_id", "total_cost"))
        published.append(target.url(keys.statement_key(month, "csv")))
        missing += [str(day) for day in days_missing]
        tables.append(statement)
        if days_missing:
            context.log.info(f"the statement of {month:%Y-%m} lacks {len(days_missing)} day(s) with no chargeback")
    statement = pa.concat_tables(tables)
    preview = statement.select(PREVIEW_COLUMNS).sort_by([("total_cost", "descending"), ("product_id", "ascending")])
    yield dg.MaterializeResult(
        metadata={
            "dagster/row_count": statement.num_rows,
            "total_cost": float(sum(statement["total_cost"].to_pylist(), Decimal(0))),
            "days_missing": missing,
            "days_missing_count": len(missing),
            "cost_by_product": markdown_table(preview, limit=20),
            "statement_csv": dg.MetadataValue.path(published[-1]),
            "dagster/column_schema": table_schema(statements.MONTHLY_STATEMENT_SCHEMA),
        }
    )
    yield checks.totals_match(MONTHLY_STATEMENT_KEY, checks.STATEMENT_MATCHES_DAYS, stated, expected)


def monthly_statement_asset(calendar: Calendar) -> dg.AssetsDefinition:
    @dg.asset(
        partitions_def=calendar.monthly,
        backfill_policy=dg.BackfillPolicy.single_run(),
        deps=["daily_chargeback"],
        group_name="costs",
        owners=OWNERS,
        kinds={"parquet", "csv"},
        description=(
            "Per product and currency: the month's tokens, PTU usage cost, unused PTU cost, pay-as-you-go cost "
            "and total cost, summed exactly from the month's published daily chargebacks: "
            "`monthly/month=YYYY-MM/statement.csv` and `.parquet`. `days_covered` counts the days it includes; "
            "days without a chargeback are listed in the metadata (`days_missing`), never counted as zero. "
            "The month in progress is a partition too: its statement covers the days so far."
        ),
        check_specs=[
            dg.AssetCheckSpec(
                checks.STATEMENT_MATCHES_DAYS,
                asset=MONTHLY_STATEMENT_KEY,
                description="The published statement, read back, holds exactly the daily chargebacks' cost by product.",
            )
        ],
    )
    def monthly_statement(context: dg.AssetExecutionContext, lake: ObjectStoreResource, reports: ObjectStoreResource):
        yield from publish_statements(context, lake, reports)

    return monthly_statement
