"""Daily reports published to the report target (Azure Blob Storage, or a local folder).

A day whose reconciliation is blocked is not published (`publication_gate`): its previous report, if
any, stays untouched, unless the documented override publishes it anyway and records that it did.
"""

import io
from datetime import date, timedelta

import dagster as dg
import pyarrow as pa
import pyarrow.parquet as pq

from chargeback_pipeline import checks
from chargeback_pipeline.assets.publication_gate import PublicationGate, PublishConfig
from chargeback_pipeline.assets.raw import OWNERS
from chargeback_pipeline.assets.reconciliation import DAILY_RECONCILIATION, daily_reconciliation
from chargeback_pipeline.assets.usage import DAILY_USAGE, daily_product_usage, top_products
from chargeback_pipeline.chargeback_schemas import UNATTRIBUTED_PRODUCT
from chargeback_pipeline.lake import day_key
from chargeback_pipeline.metadata import markdown_table, table_schema
from chargeback_pipeline.partitions import daily_partitions, days_in
from chargeback_pipeline.report_files import csv_bytes, report_files
from chargeback_pipeline.resources import ObjectStoreResource

PRODUCT_USAGE_REPORT = "product_usage_report"
# Lines that make a day's report add up to what the deployments metered (and Azure bills):
UNATTRIBUTED = UNATTRIBUTED_PRODUCT  # metric - logged: traffic that bypassed APIM or was not logged
LOGGED_NOT_BILLABLE = "logged-not-billable"  # logged - billable: failed requests' tokens, LLM records
# without a gateway row, and requests whose gateway row falls on the other side of midnight.
RECONCILIATION_LINES = (UNATTRIBUTED, LOGGED_NOT_BILLABLE)


# Yesterday's report is expected by 02:00 UTC (its last hour lands at 00:20, then the daily step runs).
DAILY_REPORT_FRESHNESS = dg.FreshnessPolicy.cron(deadline_cron="0 2 * * *", lower_bound_delta=timedelta(hours=2))


def product_usage_report_key(day: date, extension: str) -> str:
    return f"daily/usage_date={day.isoformat()}/{PRODUCT_USAGE_REPORT.removesuffix('_report')}.{extension}"


def reconciliation_lines(usage: pa.Table, reconciliation: pa.Table) -> pa.Table:
    """Per deployment with metrics: an `unattributed` and a `logged-not-billable` line of tokens."""
    model_of, backend_of = {}, {}
    for row in usage.to_pylist():
        model_of.setdefault(row["deployment_name"], set()).add(row["model_name"])
        backend_of.setdefault(row["deployment_name"], set()).add(row["backend_id"])
    lines = []
    for row in reconciliation.filter(reconciliation["has_metrics"]).to_pylist():
        name = row["deployment_name"]
        model = next(iter(model_of[name])) if len(model_of.get(name, ())) == 1 else "unknown"
        backend = next(iter(backend_of[name])) if len(backend_of.get(name, ())) == 1 else "unknown"
        splits = {
            UNATTRIBUTED: (row["unattributed_prompt_tokens"], row["unattributed_completion_tokens"]),
            LOGGED_NOT_BILLABLE: (
                row["logged_prompt_tokens"] - row["billable_prompt_tokens"],
                row["logged_completion_tokens"] - row["billable_completion_tokens"],
            ),
        }
        for product, (prompt, completion) in splits.items():
            if prompt or completion:
                lines.append(
                    {
                        "usage_date": row["usage_date"],
                        "product_id": product,
                        "subscription_id": product,
                        "model_name": model,
                        "deployment_name": name,
                        "backend_id": backend,
                        "prompt_tokens": prompt,
                        "completion_tokens": completion,
                        "total_tokens": prompt + completion,
                        "calls": 0,
                        "failed_calls": 0,
                        "first_seen": None,
                        "last_seen": None,
                    }
                )
    return pa.Table.from_pylist(lines, schema=usage.schema)


def build_report(usage: pa.Table, reconciliation: pa.Table) -> pa.Table:
    keys = ["usage_date", "product_id", "subscription_id", "model_name", "deployment_name", "backend_id"]
    report = pa.concat_tables([usage, reconciliation_lines(usage, reconciliation)])
    return report.sort_by([(k, "ascending") for k in keys])


def _published_totals(data: dict[str, bytes]) -> dict[str, int]:
    parquet = pq.read_table(io.BytesIO(data["parquet"]))
    csv_rows = data["csv"].decode("utf-8").count("\r\n") - 1
    return {
        "parquet_total_tokens": sum(parquet["total_tokens"].to_pylist()),
        "parquet_rows": parquet.num_rows,
        "csv_rows": csv_rows if b'"' not in data["csv"] else parquet.num_rows,
    }


@dg.asset(
    partitions_def=daily_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    deps=[daily_product_usage, daily_reconciliation],
    group_name="reports",
    owners=OWNERS,
    freshness_policy=DAILY_REPORT_FRESHNESS,
    kinds={"azure", "csv", "parquet"},
    description=(
        "The published per-product usage report of the day: `daily/usage_date=YYYY-MM-DD/product_usage.csv` "
        "and `.parquet` in the report container, replaced whole on every run; plus `unattributed` and "
        "`logged-not-billable` lines per deployment so totals add up to the deployments' metrics. Not "
        "published while the day's reconciliation is blocked."
    ),
    check_specs=[
        dg.AssetCheckSpec(
            checks.REPORT_MATCHES_ROLLUP,
            asset=PRODUCT_USAGE_REPORT,
            description="The published files, read back, hold the rollup's rows and token totals.",
        )
    ],
)
def product_usage_report(
    context: dg.AssetExecutionContext, config: PublishConfig, lake: ObjectStoreResource, reports: ObjectStoreResource
):
    lake_store, target = lake.lake(), reports.store()
    gate = PublicationGate(context, config, target, "usage report")
    published, mismatches = [], []
    report = None
    for day in days_in(context.partition_time_window):
        usage = lake_store.read(day_key(DAILY_USAGE, day))
        reconciliation = lake_store.read(day_key(DAILY_RECONCILIATION, day))
        if not gate.admits(day, reconciliation):
            continue
        report = build_report(usage, reconciliation)
        files = report_files(report)
        for extension, data in files.items():
            target.write_bytes(product_usage_report_key(day, extension), data)
        read_back = {ext: target.read_bytes(product_usage_report_key(day, ext)) for ext in files}
        published_totals = _published_totals(read_back)
        expected = {"parquet_total_tokens": sum(report["total_tokens"].to_pylist()), "parquet_rows": report.num_rows}
        if read_back["csv"] != csv_bytes(report) or any(published_totals[k] != v for k, v in expected.items()):
            mismatches.append(f"{day}: published {published_totals}, rollup {expected}")
        published.append(target.url(product_usage_report_key(day, "csv")))
    gate.fail_if_blocked(published)
    context.log.info(f"published {len(published)} daily report(s), last: {published[-1]}")
    yield dg.MaterializeResult(
        metadata={
            "dagster/row_count": report.num_rows,
            "total_tokens": sum(report["total_tokens"].to_pylist()),
            "report_csv": dg.MetadataValue.path(published[-1]),
            "published_despite_blocked_reconciliation": gate.overridden,
            "dagster/column_schema": table_schema(report.schema),
            "top_products": markdown_table(top_products(report)),
        }
    )
    yield checks.report_matches_rollup(dg.AssetKey(PRODUCT_USAGE_REPORT), mismatches, len(published))
