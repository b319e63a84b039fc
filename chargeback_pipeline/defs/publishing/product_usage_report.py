"""`product_usage_report` (daily): the per-product usage report of each day, published to the report
target (Azure Blob Storage, or a local folder) as CSV and Parquet.

A day whose reconciliation is blocked, or whose new report has fewer product rows (with billable calls)
or fewer attributed tokens than the one already published, is not published (`gate`): its previous report, if any, stays
untouched, unless the documented override publishes it anyway and records that it did.
"""

import json
from datetime import timedelta

import dagster as dg

from chargeback_pipeline.core.reports import RECONCILIATION_LINES, build_report, top_products
from chargeback_pipeline.defs import partition_checks
from chargeback_pipeline.defs.metadata import OWNERS, log_run_totals, markdown_table, record_partition
from chargeback_pipeline.defs.partitions import Calendar, day_partition_key, days_in
from chargeback_pipeline.defs.publishing import checks
from chargeback_pipeline.defs.publishing.gate import PublicationGate, PublishConfig, ShrinkGuard
from chargeback_pipeline.defs.resources import ObjectStoreResource
from chargeback_pipeline.sources.resource import LogSourceResource
from chargeback_pipeline.storage import keys
from chargeback_pipeline.storage.parquet_bytes import read_parquet_bytes
from chargeback_pipeline.storage.report_files import csv_bytes, report_files

PRODUCT_USAGE_REPORT_KEY = dg.AssetKey("product_usage_report")
# Yesterday's report is expected by 02:00 UTC (its last hour lands at 00:20, then the daily step runs).
DAILY_REPORT_FRESHNESS = dg.FreshnessPolicy.cron(deadline_cron="0 2 * * *", lower_bound_delta=timedelta(hours=2))
# A day's report never replaces the published one with fewer product rows with billable calls, or fewer
# attributed tokens (without override). The report's grand total is pinned to the metrics by its
# `unattributed` line, so lost logs show only in the product rows; the reconciliation lines, and rows of
# failed calls only, shrink when late rows arrive, so are not counted.
USAGE_SHRINK_GUARD = ShrinkGuard(
    report="product_usage",
    parquet_key=lambda day: keys.product_usage_report_key(day, "parquet"),
    total_column="total_tokens",
    pseudo_products=frozenset(RECONCILIATION_LINES),
    usage_column="calls",
)


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
):
    """Publish every day of the run through the gate; each published day's materialization carries its own
    rows, tokens, file and top products, and the check judges each day's files read back."""
    lake_store, target = lake.lake(), reports.store()
    gate = PublicationGate(context, config, target, "usage report", USAGE_SHRINK_GUARD)
    published, judged, total_tokens = [], [], 0
    for day in days_in(context.partition_time_window):
        usage = lake_store.read(keys.day_key(keys.DAILY_USAGE, day))
        reconciliation = lake_store.read(keys.day_key(keys.DAILY_RECONCILIATION, day))
        report = build_report(usage, reconciliation)
        overridden, shrink_overridden = len(gate.overridden), len(gate.shrink_overridden)
        if not gate.admits(day, reconciliation, report):
            continue
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
                # Only when this day was published by an override (left out otherwise).
                "published_despite_blocked_reconciliation": gate.overridden[overridden:],
                "published_despite_shrink": gate.shrink_overridden[shrink_overridden:],
                "top_products": markdown_table(top_products(report)),
            },
        )
        judged.append((day_partition_key(day), checks.report_matches_rollup(PRODUCT_USAGE_REPORT_KEY, mismatches, 1)))
    gate.fail_if_blocked(published)
    context.log.info(f"published {len(published)} daily report(s), last: {published[-1]}")
    log_run_totals(context, "product_usage_report", len(published), {"total tokens": total_tokens})
    yield dg.MaterializeResult()
    yield from partition_checks.evaluations(context, judged)


def product_usage_report_asset(calendar: Calendar) -> dg.AssetsDefinition:
    @dg.asset(
        partitions_def=calendar.daily,
        backfill_policy=dg.BackfillPolicy.single_run(),
        deps=["daily_product_usage", "daily_reconciliation"],
        group_name="reports",
        owners=OWNERS,
        freshness_policy=DAILY_REPORT_FRESHNESS,
        kinds={"azure", "csv", "parquet"},
        description=(
            "The published per-product usage report of the day: `daily/usage_date=YYYY-MM-DD/product_usage.csv` "
            "and `.parquet` in the report container, replaced whole on every run; plus `unattributed` and "
            "`logged-not-billable` lines per deployment so totals add up to the deployments' metrics. Not "
            "published while the day's reconciliation is blocked, nor when it would replace the published "
            "report with fewer product rows or attributed tokens (unless overridden, recorded)."
        ),
        check_specs=[
            partition_checks.spec(
                checks.REPORT_MATCHES_ROLLUP,
                PRODUCT_USAGE_REPORT_KEY,
                calendar.daily,
                "The day's published files, read back, hold the rollup's rows and token totals.",
            )
        ],
    )
    def product_usage_report(
        context: dg.AssetExecutionContext,
        config: PublishConfig,
        lake: ObjectStoreResource,
        reports: ObjectStoreResource,
        source: LogSourceResource,
    ):
        yield from publish_reports(context, config, lake, reports, source)

    return product_usage_report
