"""`daily_chargeback` (daily): each day's PTU and pay-as-you-go cost split over APIM products, published.

The allocation itself is `core.billing.allocation` (pure); this asset feeds it the day's billable usage
and unattributed tokens (`core.cost_inputs`, SQL models over the lake) and publishes the result.
"""

from collections import defaultdict
from decimal import Decimal

import dagster as dg
import pyarrow as pa

from chargeback_pipeline.core.billing.allocation import allocate_day
from chargeback_pipeline.core.billing.schemas import DAILY_CHARGEBACK_SCHEMA
from chargeback_pipeline.core.cost_inputs import allocation_inputs
from chargeback_pipeline.defs.billing import checks
from chargeback_pipeline.defs.metadata import OWNERS, markdown_rows, markdown_table, table_schema
from chargeback_pipeline.defs.partitions import Calendar, days_in
from chargeback_pipeline.defs.publishing.gate import PublicationGate, PublishConfig
from chargeback_pipeline.defs.resources import ObjectStoreResource, PricingResource
from chargeback_pipeline.storage import keys
from chargeback_pipeline.storage.report_files import report_files

DAILY_CHARGEBACK_KEY = dg.AssetKey("daily_chargeback")
CLIPPED_COLUMNS = ("clipped_prompt_tokens", "clipped_completion_tokens")


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


def publish_chargebacks(
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
        if not gate.admits(day, store.read(keys.day_key(keys.DAILY_RECONCILIATION, day))):
            continue
        store.write(keys.day_key(keys.DAILY_CHARGEBACK, day), lines)
        for extension, data in report_files(lines).items():
            target.write_bytes(keys.chargeback_key(day, extension), data)
        published.append(target.url(keys.chargeback_key(day, "csv")))
        tables.append(lines)
        comparison += checks.ptu_cost_comparison(prices, day, lines)
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
            "logged_above_metrics_hours": markdown_rows(clipped, limit=20, empty="_none_"),
            "dagster/column_schema": table_schema(DAILY_CHARGEBACK_SCHEMA),
        }
    )
    yield checks.costs_add_up(DAILY_CHARGEBACK_KEY, comparison)
    yield checks.no_negative_lines(DAILY_CHARGEBACK_KEY, lines)


def daily_chargeback_asset(calendar: Calendar) -> dg.AssetsDefinition:
    @dg.asset(
        partitions_def=calendar.daily,
        backfill_policy=dg.BackfillPolicy.single_run(),
        deps=["attributed_requests", "deployment_reconciliation", "daily_reconciliation"],
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
                checks.COSTS_ADD_UP,
                asset=DAILY_CHARGEBACK_KEY,
                description="Per PTU deployment-day, the lines sum exactly to the 24 hour costs in the pricing file.",
            ),
            dg.AssetCheckSpec(
                checks.NO_NEGATIVE_LINES,
                asset=DAILY_CHARGEBACK_KEY,
                description="No line has a negative count or cost.",
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
        yield from publish_chargebacks(context, config, lake, reports, pricing)

    return daily_chargeback
