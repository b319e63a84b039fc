"""The daily chargeback: each day's PTU and pay-as-you-go cost split over APIM products, and published.

The allocation itself is `chargeback_pipeline.allocation` (pure); this asset feeds it the day's
billable usage and unattributed tokens, built by SQL models from the lake, and publishes the result.
"""

from collections import defaultdict
from datetime import date
from decimal import Decimal

import dagster as dg
import pyarrow as pa

from chargeback_pipeline import cost_checks, sql
from chargeback_pipeline.allocation import allocate_day
from chargeback_pipeline.assets.publication_gate import PublicationGate, PublishConfig
from chargeback_pipeline.assets.raw import OWNERS
from chargeback_pipeline.assets.reconciliation import DAILY_RECONCILIATION, HOURLY_RECONCILIATION, daily_reconciliation
from chargeback_pipeline.assets.usage import ATTRIBUTED, ATTRIBUTED_KEY, day_hours
from chargeback_pipeline.chargeback_schemas import DAILY_CHARGEBACK_SCHEMA
from chargeback_pipeline.lake import Lake, day_key, hour_key
from chargeback_pipeline.metadata import markdown_table, table_schema
from chargeback_pipeline.partitions import daily_partitions, days_in
from chargeback_pipeline.report_files import report_files
from chargeback_pipeline.resources import ObjectStoreResource, PricingResource

DAILY_CHARGEBACK = "daily_chargeback"
HOURLY_USAGE_MODEL = "marts/fct_hourly_billable_usage"
UNATTRIBUTED_MODEL = "marts/fct_hourly_unattributed_tokens"
CLIPPED_COLUMNS = ("clipped_prompt_tokens", "clipped_completion_tokens")


def chargeback_key(day: date, extension: str) -> str:
    return f"daily/usage_date={day.isoformat()}/chargeback.{extension}"


def allocation_inputs(lake: Lake, day: date) -> tuple[pa.Table, pa.Table]:
    """The day's billable usage per hour and line, and its unattributed tokens per deployment-hour."""
    hours = day_hours(day)
    # DuckDB reads the day's attributed hours itself, only the columns the model uses: a large tenant's
    # day (10M requests) is never held in memory.
    relations = {
        "attributed_requests": lake.relation([hour_key(ATTRIBUTED, h) for h in hours]),
        "deployment_reconciliation": lake.relation([hour_key(HOURLY_RECONCILIATION, h) for h in hours]),
    }
    con = sql.connect()
    try:
        sql.build_models(con, [], relations)
        return sql.select_model(con, HOURLY_USAGE_MODEL, {"usage_date": day}), sql.select_model(con, UNATTRIBUTED_MODEL)
    finally:
        con.close()


def cost_by_product(lines: pa.Table) -> pa.Table:
    totals: defaultdict[str, dict[str, Decimal]] = defaultdict(lambda: defaultdict(Decimal))
    for row in lines.to_pylist():
        for column in ("ptu_cost", "paygo_cost", "total_cost"):
            totals[row["product_id"]][column] += row[column]
    rows = [{"product_id": product, **costs} for product, costs in totals.items()]
    return pa.Table.from_pylist(sorted(rows, key=lambda r: (-r["total_cost"], r["product_id"])))


def _clipped_rows(unattributed: pa.Table) -> list[dict]:
    """Deployment-hours where APIM logged more tokens than the metrics count (not charged, so reported)."""
    rows = unattributed.select(["usage_hour", "deployment_name", *CLIPPED_COLUMNS]).to_pylist()
    clipped = [row for row in rows if any(row[column] for column in CLIPPED_COLUMNS)]
    return [{**row, "usage_hour": f"{row['usage_hour']:%Y-%m-%d %H:00}"} for row in clipped]


@dg.asset(
    partitions_def=daily_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    deps=[ATTRIBUTED_KEY, dg.AssetDep(HOURLY_RECONCILIATION), daily_reconciliation],
    group_name="costs",
    owners=OWNERS,
    kinds={"duckdb", "parquet", "csv"},
    description=(
        "The day's cost per APIM product, subscription, model, deployment and backend: tokens, weighted "
        "tokens, PTU share, pay-as-you-go cost and total cost, priced with the pricing file "
        "(CHARGEBACK_PRICING_FILE). Tokens the metrics count but APIM did not log are charged to "
        "`unattributed`; unused PTU capacity follows the file's policy. Published as "
        "`daily/usage_date=YYYY-MM-DD/chargeback.csv` and `.parquet`; not published while the day's "
        "reconciliation is blocked."
    ),
    check_specs=[
        dg.AssetCheckSpec(
            cost_checks.COSTS_ADD_UP,
            asset=DAILY_CHARGEBACK,
            description="Per PTU deployment and day, the lines sum exactly to the 24 hour costs of the pricing file.",
        ),
        dg.AssetCheckSpec(
            cost_checks.NO_NEGATIVE_LINES, asset=DAILY_CHARGEBACK, description="No line has a negative count or cost."
        ),
    ],
)
def daily_chargeback(
    context: dg.AssetExecutionContext,
    config: PublishConfig,
    lake: ObjectStoreResource,
    reports: ObjectStoreResource,
    pricing: PricingResource,
):
    store, target, prices = lake.lake(), reports.store(), pricing.pricing()
    gate = PublicationGate(context, config, target, "chargeback")
    published, tables, comparison, clipped = [], [], [], []
    for day in days_in(context.partition_time_window):
        usage, unattributed = allocation_inputs(store, day)
        lines = allocate_day(usage, unattributed, prices, day)
        if not gate.admits(day, store.read(day_key(DAILY_RECONCILIATION, day))):
            continue
        store.write(day_key(DAILY_CHARGEBACK, day), lines)
        for extension, data in report_files(lines).items():
            target.write_bytes(chargeback_key(day, extension), data)
        published.append(target.url(chargeback_key(day, "csv")))
        tables.append(lines)
        comparison += cost_checks.ptu_cost_comparison(prices, day, lines)
        clipped += _clipped_rows(unattributed)
    gate.fail_if_blocked(published)
    lines = pa.concat_tables(tables) if tables else DAILY_CHARGEBACK_SCHEMA.empty_table()
    context.log.info(f"published {len(published)} daily chargeback(s), last: {published[-1]}")
    yield dg.MaterializeResult(
        metadata={
            "dagster/row_count": lines.num_rows,
            "total_cost": float(sum(lines["total_cost"].to_pylist(), Decimal(0))),
            "currency": prices.currency,
            "cost_by_product": markdown_table(cost_by_product(lines), limit=20),
            "chargeback_csv": dg.MetadataValue.path(published[-1]),
            "published_despite_blocked_reconciliation": gate.overridden,
            # More tokens logged than metered: not charged (a gap cannot be negative), reported here.
            "logged_above_metrics_tokens": sum(row[c] for row in clipped for c in CLIPPED_COLUMNS),
            "logged_above_metrics_hours": markdown_table(pa.Table.from_pylist(clipped), limit=20)
            if clipped
            else dg.MetadataValue.md("_none_"),
            "dagster/column_schema": table_schema(DAILY_CHARGEBACK_SCHEMA),
        }
    )
    yield cost_checks.costs_add_up(dg.AssetKey(DAILY_CHARGEBACK), comparison)
    yield cost_checks.no_negative_lines(dg.AssetKey(DAILY_CHARGEBACK), lines)
