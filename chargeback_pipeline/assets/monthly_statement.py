"""The monthly statement: each product's tokens and costs of a calendar month, from its daily chargebacks."""

import io
from collections import Counter
from datetime import date, timedelta
from decimal import Decimal

import dagster as dg
import pyarrow as pa
import pyarrow.parquet as pq

from chargeback_pipeline import cost_checks, statements
from chargeback_pipeline.assets.costs import DAILY_CHARGEBACK, daily_chargeback
from chargeback_pipeline.assets.raw import OWNERS
from chargeback_pipeline.chargeback_schemas import DAILY_CHARGEBACK_SCHEMA
from chargeback_pipeline.lake import Lake, day_key
from chargeback_pipeline.metadata import markdown_table, table_schema
from chargeback_pipeline.partitions import monthly_partitions, months_in
from chargeback_pipeline.report_files import report_files
from chargeback_pipeline.resources import ObjectStoreResource

MONTHLY_STATEMENT = "monthly_statement"
PREVIEW_COLUMNS = ["product_id", "total_cost", "ptu_usage_cost", "ptu_unused_cost", "paygo_cost", "days_covered"]


def statement_key(month: date, extension: str) -> str:
    return f"monthly/month={month:%Y-%m}/statement.{extension}"


def days_of_month(month: date) -> list[date]:
    return [month + timedelta(days=n) for n in range((statements.next_month_start(month) - month).days)]


def published_days(lake: Lake, month: date) -> tuple[pa.Table, list[date]]:
    """The daily chargeback lines of the month's days that have one, and the days that have none."""
    present = [day for day in days_of_month(month) if lake.store.exists(day_key(DAILY_CHARGEBACK, day))]
    missing = [day for day in days_of_month(month) if day not in present]
    tables = [lake.read(day_key(DAILY_CHARGEBACK, day), DAILY_CHARGEBACK_SCHEMA) for day in present]
    return (pa.concat_tables(tables) if tables else DAILY_CHARGEBACK_SCHEMA.empty_table()), missing


@dg.asset(
    partitions_def=monthly_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    deps=[daily_chargeback],
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
            cost_checks.STATEMENT_MATCHES_DAYS,
            asset=MONTHLY_STATEMENT,
            description="The published statement, read back, holds exactly the daily chargebacks' cost per product.",
        )
    ],
)
def monthly_statement(context: dg.AssetExecutionContext, lake: ObjectStoreResource, reports: ObjectStoreResource):
    store, target = lake.lake(), reports.store()
    published, missing, tables = [], [], []
    stated, expected = Counter(), Counter()
    for month in months_in(context.partition_time_window):
        lines, days_missing = published_days(store, month)
        statement = statements.monthly_statement(lines, month)
        for extension, data in report_files(statement).items():
            target.write_bytes(statement_key(month, extension), data)
        read_back = pq.read_table(io.BytesIO(target.read_bytes(statement_key(month, "parquet"))))
        stated.update(cost_checks.cost_per_product(read_back, month, "product_id", "total_cost"))
        expected.update(cost_checks.cost_per_product(lines, month, "product_id", "total_cost"))
        published.append(target.url(statement_key(month, "csv")))
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
    yield cost_checks.totals_match(dg.AssetKey(MONTHLY_STATEMENT), cost_checks.STATEMENT_MATCHES_DAYS, stated, expected)
