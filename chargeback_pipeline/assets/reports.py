"""Daily reports published to the report target (Azure Blob Storage, or a local folder)."""

import dagster as dg

from chargeback_pipeline.assets.raw import OWNERS
from chargeback_pipeline.assets.usage import DAILY_USAGE, daily_product_usage, top_products
from chargeback_pipeline.lake import day_key
from chargeback_pipeline.metadata import markdown_table, table_schema
from chargeback_pipeline.partitions import daily_partitions, days_in
from chargeback_pipeline.report_files import report_files
from chargeback_pipeline.resources import ObjectStoreResource


def product_usage_report_key(day, extension: str) -> str:
    return f"daily/usage_date={day.isoformat()}/product_usage.{extension}"


@dg.asset(
    partitions_def=daily_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    deps=[daily_product_usage],
    group_name="reports",
    owners=OWNERS,
    kinds={"azure", "csv", "parquet"},
    description=(
        "The published per-product usage report of the day: `daily/usage_date=YYYY-MM-DD/product_usage.csv` "
        "and `.parquet` in the report container, replaced whole on every run. A stable contract for "
        "downstream tools: columns and sort order do not change."
    ),
)
def product_usage_report(
    context: dg.AssetExecutionContext, lake: ObjectStoreResource, reports: ObjectStoreResource
) -> dg.MaterializeResult:
    lake_store, target = lake.lake(), reports.store()
    published, rows, total_tokens, last = [], 0, 0, None
    for day in days_in(context.partition_time_window):
        usage = lake_store.read(day_key(DAILY_USAGE, day))
        for extension, data in report_files(usage).items():
            target.write_bytes(product_usage_report_key(day, extension), data)
        published.append(target.url(product_usage_report_key(day, "csv")))
        rows += usage.num_rows
        total_tokens += sum(usage["total_tokens"].to_pylist())
        last = usage
    context.log.info(f"published {len(published)} daily report(s): {published[0]} ... {published[-1]}")
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": rows,
            "total_tokens": total_tokens,
            "report_csv": dg.MetadataValue.path(published[-1]),
            "dagster/column_schema": table_schema(last.schema),
            "top_products": markdown_table(top_products(last)),
        }
    )
