"""`daily_chargeback` (daily): each day's PTU and pay-as-you-go cost split over APIM products, published.

The allocation itself is `core.billing.allocation` (pure); this asset feeds it the day's billable usage
and unattributed tokens (`core.cost_inputs`, SQL models over the lake) and publishes the result.
"""

from collections import defaultdict
from decimal import Decimal

import dagster as dg
import pyarrow as pa

from chargeback_pipeline.core.billing.allocation import allocate_day_with_origins
from chargeback_pipeline.core.cost_inputs import allocation_inputs
from chargeback_pipeline.defs import partition_checks
from chargeback_pipeline.defs.billing import checks
from chargeback_pipeline.defs.freshness import DAILY_MONEY_FRESHNESS
from chargeback_pipeline.defs.metadata import (
    log_run_totals,
    markdown_rows,
    markdown_table,
    money_text,
    money_value,
    record_partition,
)
from chargeback_pipeline.defs.partitioned_asset import partitioned_asset
from chargeback_pipeline.defs.partitions import Calendar, day_partition_key, days_in
from chargeback_pipeline.defs.resources import ObjectStoreResource, PricingResource
from chargeback_pipeline.storage import keys

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
    lake: ObjectStoreResource,
    reports: ObjectStoreResource,
    pricing: PricingResource,
):
    """Price every day of the run from the pricing file (the estimate); each day's materialization carries
    its own cost (at the currency's minor unit, with the currency) and lines, and the checks judge each day
    on its own lines. The lake keeps the lines as computed, which `billed_chargeback` publishes (as the
    estimate, or with the Cost Management export's actual cost) and the FOCUS export builds on."""
    store, prices = lake.lake(), pricing.pricing()
    minor_unit, currency = prices.currency_minor_unit, prices.currency
    published, judged, run_cost = [], [], Decimal(0)
    for day in days_in(context.partition_time_window):
        usage, unattributed, not_billable = allocation_inputs(store, day)
        lines, origins = allocate_day_with_origins(usage, unattributed, prices, day, not_billable)
        reconciliation = store.read(keys.day_key(keys.DAILY_RECONCILIATION, day))
        store.write(keys.day_key(keys.DAILY_CHARGEBACK, day), lines)
        # The split the lines were summed from, for the FOCUS 1.3 export (never recomputed there).
        store.write(keys.day_key(keys.DAILY_CHARGEBACK, day, keys.ORIGIN_ALLOCATIONS_PART), origins)
        url = reports.store().url(keys.chargeback_key(day, "csv"))
        published.append(url)
        clipped = _clipped_rows(unattributed)
        day_cost = sum(lines["total_cost"].to_pylist(), Decimal(0))
        run_cost += day_cost
        partition = day_partition_key(day)
        record_partition(
            context,
            partition,
            {
                "dagster/row_count": lines.num_rows,
                "total_cost": money_value(day_cost, currency, minor_unit),
                "currency": currency,
                "cost_by_product": markdown_table(cost_by_product(lines), 20, currency, minor_unit),
                "chargeback_csv": dg.MetadataValue.path(url),  # published by billed_chargeback
                # More tokens logged than metered: not charged (a gap cannot be negative), reported here.
                "logged_above_metrics_tokens": sum(row[c] for row in clipped for c in CLIPPED_COLUMNS),
                "logged_above_metrics_hours": markdown_rows(clipped, limit=20) if clipped else None,
            },
        )
        judged += [
            (
                partition,
                checks.costs_add_up(DAILY_CHARGEBACK_KEY, checks.ptu_cost_comparison(prices, day, lines), currency),
            ),
            (
                partition,
                checks.paygo_matches_metered(
                    DAILY_CHARGEBACK_KEY, checks.paygo_cost_comparison(prices, day, lines, reconciliation), currency
                ),
            ),
            (partition, checks.no_negative_lines(DAILY_CHARGEBACK_KEY, lines)),
        ]
    context.log.info(f"priced {len(published)} day(s); billed_chargeback publishes them, last: {published[-1]}")
    log_run_totals(
        context, "daily_chargeback", len(published), {"total cost": money_text(run_cost, currency, minor_unit)}
    )
    yield dg.MaterializeResult()
    yield from partition_checks.evaluations(context, judged)


def daily_chargeback_asset(calendar: Calendar) -> dg.AssetsDefinition:
    @partitioned_asset(
        DAILY_CHARGEBACK_KEY,
        calendar.daily,
        deps=["attributed_requests", "deployment_reconciliation", "daily_reconciliation"],
        group_name="costs",
        freshness_policy=DAILY_MONEY_FRESHNESS,
        kinds={"duckdb", "parquet", "csv"},
        description=(
            "The day's cost per APIM product, subscription, model, deployment and backend: tokens, weighted "
            "tokens, PTU share, pay-as-you-go cost and total cost, priced with the pricing file "
            "(CHARGEBACK_PRICING_FILE): the estimate. Tokens the metrics count but APIM did not log are charged "
            "to `unattributed`; unused PTU capacity follows the file's policy. Kept in the lake; "
            "billed_chargeback publishes it as `daily/usage_date=YYYY-MM-DD/chargeback.csv` and `.parquet` "
            "(with the Cost Management export's actual cost once it covers the day)."
        ),
        checks={
            checks.COSTS_ADD_UP: (
                "Per PTU deployment, the day's lines sum exactly to its 24 hour costs in the pricing file."
            ),
            checks.PAYGO_MATCHES_METERED: (
                "Per pay-as-you-go resource and deployment, the day's lines sum exactly to the metered tokens at "
                "the model's prices, rounded once: what Azure invoices."
            ),
            checks.NO_NEGATIVE_LINES: "No line has a negative count or cost.",
        },
    )
    def daily_chargeback(
        context: dg.AssetExecutionContext,
        lake: ObjectStoreResource,
        reports: ObjectStoreResource,
        pricing: PricingResource,
    ):
        yield from publish_chargebacks(context, lake, reports, pricing)

    return daily_chargeback
