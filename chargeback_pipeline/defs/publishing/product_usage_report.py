"""`product_usage_report` (daily): the per-product usage report of each day, published to the report
target (Azure Blob Storage, or a local folder) as CSV and Parquet.

The report is staged (`staging.py`); whether it replaces the published one is the day's one publication
decision (`day_publication`), taken with every other output of the day.
"""

import json
from datetime import timedelta

import dagster as dg

from chargeback_pipeline.core.reports import build_report, top_products
from chargeback_pipeline.defs import partition_checks
from chargeback_pipeline.defs.metadata import log_run_totals, markdown_table, record_partition
from chargeback_pipeline.defs.partitioned_asset import partitioned_asset
from chargeback_pipeline.defs.partitions import Calendar, day_partition_key, days_in
from chargeback_pipeline.defs.publishing import checks
from chargeback_pipeline.defs.publishing.day_publication import decide_and_publish
from chargeback_pipeline.defs.publishing.gate import PublishConfig
from chargeback_pipeline.defs.publishing.staging import staged_reports
from chargeback_pipeline.defs.resources import ObjectStoreResource, PricingResource
from chargeback_pipeline.sources.resource import LogSourceResource
from chargeback_pipeline.storage import keys
from chargeback_pipeline.storage.parquet_bytes import read_parquet_bytes
from chargeback_pipeline.storage.report_files import csv_bytes, report_files

PRODUCT_USAGE_REPORT_KEY = dg.AssetKey("product_usage_report")
# Yesterday's report is expected by 02:00 UTC (its last hour lands at 00:20, then the daily step runs).
DAILY_REPORT_FRESHNESS = dg.FreshnessPolicy.cron(deadline_cron="0 2 * * *", lower_bound_delta=timedelta(hours=2))


def _published_totals(data: dict[str, bytes]) -> dict[str, int]:
    parquet = read_parquet_bytes(data["parquet"])
    csv_rows = data["csv"].decode("utf-8").count("\r\n") - 1
    return {
        "parquet_total_tokens": sum(parquet["total_tokens"].to_pylist()),
        "parquet_rows": parquet.num_rows,
        "csv_rows": csv_rows if b'"' not in data["csv"] else parquet.num_rows,
    }


def record_reconciliation_off(target, day, reason: str | None) -> None:
    """Beside a day published without reconciliation (switched off on purpose), say so and why: its report
    has no `unattributed` line because nothing was compared, not because nothing was missing."""
    if reason:
        record = {"usage_date": str(day), "reconciled": False, "reason": reason}
        target.write_bytes(keys.not_reconciled_key(day), json.dumps(record, indent=2).encode())
    else:
        target.delete(keys.not_reconciled_key(day))


def publish_reports(
    context: dg.AssetExecutionContext,
    config: PublishConfig,
    lake: ObjectStoreResource,
    reports: ObjectStoreResource,
    source: LogSourceResource,
    pricing: PricingResource,
):
    """Stage every day of the run's report; each day's materialization carries its own rows, tokens, file
    and top products, and the check judges each day's staged files read back."""
    lake_store, target = lake.lake(), staged_reports(context, reports.store())
    published, judged, total_tokens = [], [], 0
    for day in days_in(context.partition_time_window):
        usage = lake_store.read(keys.day_key(keys.DAILY_USAGE, day))
        reconciliation = lake_store.read(keys.day_key(keys.DAILY_RECONCILIATION, day))
        report = build_report(usage, reconciliation)
        files = report_files(report)
        for extension, data in files.items():
            target.write_bytes(keys.product_usage_report_key(day, extension), data)
        record_reconciliation_off(target, day, source.reconciliation_off_reason())
        read_back = {ext: target.read_bytes(keys.product_usage_report_key(day, ext)) for ext in files}
        published_totals = _published_totals(read_back)
        tokens = sum(report["total_tokens"].to_pylist())
        expected = {"parquet_total_tokens": tokens, "parquet_rows": report.num_rows}
        mismatches = []
        if read_back["csv"] != csv_bytes(report) or any(published_totals[k] != v for k, v in expected.items()):
            mismatches.append(f"{day}: published {published_totals}, rollup {expected}")
        url = target.url(keys.product_usage_report_key(day, "csv"))
        published.append(url)
        total_tokens += tokens
        record_partition(
            context,
            day_partition_key(day),
            {
                "dagster/row_count": report.num_rows,
                "total_tokens": tokens,
                "products": len(set(report["product_id"].to_pylist())),
                "report_csv": dg.MetadataValue.path(url),
                "top_products": markdown_table(top_products(report)),
            },
        )
        judged.append((day_partition_key(day), checks.report_matches_rollup(PRODUCT_USAGE_REPORT_KEY, mismatches, 1)))
    context.log.info(f"staged {len(published)} daily report(s), last: {published[-1]}")
    if not pricing.path:
        # No pricing file: the cost assets fail (saying what to set) and `day_publication` with them, but
        # usage needs no prices: the day's decision is taken here, on the usage report alone.
        decide_and_publish(context, config, lake_store, reports.store(), None)
    log_run_totals(context, "product_usage_report", len(published), {"total tokens": total_tokens})
    yield dg.MaterializeResult()
    yield from partition_checks.evaluations(context, judged)


def product_usage_report_asset(calendar: Calendar) -> dg.AssetsDefinition:
    @partitioned_asset(
        PRODUCT_USAGE_REPORT_KEY,
        calendar.daily,
        deps=["daily_product_usage", "daily_reconciliation"],
        group_name="reports",
        freshness_policy=DAILY_REPORT_FRESHNESS,
        kinds={"azure", "csv", "parquet"},
        description=(
            "The published per-product usage report of the day: `daily/usage_date=YYYY-MM-DD/product_usage.csv` "
            "and `.parquet` in the report container, staged for the day's publication decision; plus `unattributed` "
            "and `logged-not-billable` lines per deployment so totals add up to the deployments' metrics. "
            "Published by `day_publication` with the day's other outputs, or not at all."
        ),
        checks={
            checks.REPORT_MATCHES_ROLLUP: (
                "The day's published files, read back, hold the rollup's rows and token totals."
            ),
        },
    )
    def product_usage_report(
        context: dg.AssetExecutionContext,
        config: PublishConfig,
        lake: ObjectStoreResource,
        reports: ObjectStoreResource,
        source: LogSourceResource,
        pricing: PricingResource,
    ):
        yield from publish_reports(context, config, lake, reports, source, pricing)

    return product_usage_report
