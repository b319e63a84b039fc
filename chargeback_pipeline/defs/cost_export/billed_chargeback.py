"""`billed_chargeback` (daily): the day's published chargeback, `daily/usage_date=.../chargeback.{csv,parquet}`,
with its cost basis.

`daily_chargeback` prices the day from the pricing file (the estimate, kept in the lake); this asset
decides what is published. Until the newest complete Cost Management export run of its month has rows for
the day, the estimate (`cost_basis = estimate`); then the export's charges allocated to the same lines
(`cost_basis = actual`, `core.billing.actual_allocation`), with the estimate-vs-actual variance per
product. An actual day is never replaced by an estimate: if the export later stops covering it (a run
removed, the export switched off), the published actual stays and the run says so. Everything is staged,
published by `day_publication` with the day's FOCUS export and hubs copy, which read this decision.
"""

from datetime import date
from decimal import Decimal

import dagster as dg
import pyarrow as pa

from chargeback_pipeline.core.billing.actual_allocation import (
    allocate_actual_day,
    check_export_matches_pricing,
    resources_by_id,
)
from chargeback_pipeline.core.billing.cost_basis import (
    CostBasis,
    actual_lines,
    estimate_lines,
    variance_by_product,
)
from chargeback_pipeline.core.billing.pricing import Pricing
from chargeback_pipeline.defs import partition_checks
from chargeback_pipeline.defs.billing.daily_chargeback import DAILY_CHARGEBACK_KEY
from chargeback_pipeline.defs.cost_export import checks
from chargeback_pipeline.defs.metadata import markdown_table, money_value, record_partition
from chargeback_pipeline.defs.partitioned_asset import partitioned_asset
from chargeback_pipeline.defs.partitions import Calendar, day_partition_key, days_in
from chargeback_pipeline.defs.publishing.staging import staged_reports
from chargeback_pipeline.defs.resources import ObjectStoreResource, PricingResource
from chargeback_pipeline.sources.cost_export.source import MonthCharges
from chargeback_pipeline.storage import keys
from chargeback_pipeline.storage.object_store import ObjectStore
from chargeback_pipeline.storage.parquet_bytes import read_parquet_bytes
from chargeback_pipeline.storage.publication_manifest import day_manifest_key, read_manifest
from chargeback_pipeline.storage.report_files import report_files

BILLED_CHARGEBACK_KEY = dg.AssetKey("billed_chargeback")


def published_basis(published: ObjectStore, day: date) -> str | None:
    """The cost basis of the day's published chargeback, as its publication manifest records it (what was
    published, whatever became of the file since; published before the basis was kept: estimate)."""
    manifest = read_manifest(published, day_manifest_key(day))
    if manifest is None or "chargeback" not in manifest.outputs:
        return None
    basis = manifest.outputs["chargeback"].get("basis") or CostBasis.estimate.value
    return CostBasis.actual.value if basis.startswith(CostBasis.actual.value) else CostBasis.estimate.value


def export_months(pricing_resource: PricingResource, pricing: Pricing, months: set[date]) -> dict[date, MonthCharges]:
    """Per billing month of `months`, the newest complete export run's rows of the pricing file's resources
    (none when no export is configured), each checked against the pricing file's currency (the resources a
    day uses are checked with that day: `backends_in_use`)."""
    export = pricing_resource.cost_export
    if export is None or not export.is_configured():
        return {}
    months = export.source().month_charges(set(resources_by_id(pricing)), months)
    for month in months.values():
        check_export_matches_pricing(month.rows, pricing, f"cost export {month.run.describe()}", in_use=())
    return months


def backends_in_use(estimate: pa.Table) -> set[str]:
    """The backends a day's estimate lines charge or count tokens on: each must have rows in the export."""
    return {
        line["backend_id"]
        for line in estimate.select(["backend_id", "total_cost", "total_tokens"]).to_pylist()
        if line["backend_id"] is not None and (line["total_cost"] or line["total_tokens"])
    }


def publish_billed_chargebacks(
    context: dg.AssetExecutionContext,
    lake: ObjectStoreResource,
    reports: ObjectStoreResource,
    pricing: PricingResource,
):
    store, prices = lake.lake(), pricing.pricing()
    # Staged: published by `day_publication` with the day's other outputs, or not at all.
    published, target = reports.store(), staged_reports(context, reports.store())
    minor_unit, currency = prices.currency_minor_unit, prices.currency
    days = days_in(context.partition_time_window)
    months = export_months(pricing, prices, {day.replace(day=1) for day in days})
    warn_share = Decimal(pricing.cost_export.variance_warn_share if pricing.cost_export else "0.10")
    backends = resources_by_id(prices) if months else {}
    judged = []
    for day in days:
        partition = day_partition_key(day)
        if not store.store.exists(keys.day_key(keys.DAILY_CHARGEBACK, day)):
            # Not priced (no daily_chargeback in the lake): nothing to publish, said, not skipped silently.
            context.log.warning(f"{day}: no daily_chargeback in the lake, so no chargeback to publish")
            record_partition(context, partition, {"no_daily_chargeback": True})
            judged += [(partition, r) for r in checks.not_actual(BILLED_CHARGEBACK_KEY, "no daily chargeback")]
            continue
        estimate = store.read(keys.day_key(keys.DAILY_CHARGEBACK, day))
        month = months.get(day.replace(day=1))
        if month is None or day not in month.days():
            if published_basis(published, day) == CostBasis.actual:
                context.log.warning(f"{day}: kept the published actual day; no export run covers it now")
                record_partition(context, partition, {"cost_basis": "actual", "kept_actual": True})
                judged += [
                    (partition, r) for r in checks.not_actual(BILLED_CHARGEBACK_KEY, "kept the published actual")
                ]
                continue
            chargeback = estimate_lines(estimate)
            store.write(keys.day_key(keys.BILLED_CHARGEBACK, day), chargeback)
            for extension, data in report_files(chargeback, minor_unit).items():
                target.write_bytes(keys.chargeback_key(day, extension), data)
            record_partition(
                context,
                partition,
                {
                    "cost_basis": "estimate",
                    "dagster/row_count": chargeback.num_rows,
                    "chargeback_csv": dg.MetadataValue.path(published.url(keys.chargeback_key(day, "csv"))),
                },
            )
            judged += [(partition, r) for r in checks.not_actual(BILLED_CHARGEBACK_KEY, "estimate: no export run yet")]
            continue
        what = f"cost export {month.run.describe()}"
        check_export_matches_pricing(month.rows, prices, what, in_use=backends_in_use(estimate))
        allocations = allocate_actual_day(month.rows, estimate, prices, day)
        chargeback = actual_lines(estimate, allocations, day, currency)
        variance = variance_by_product(chargeback)
        store.write(keys.day_key(keys.BILLED_CHARGEBACK, day), chargeback)
        store.write(keys.day_key(keys.BILLED_CHARGEBACK, day, keys.ACTUAL_ALLOCATIONS_PART), allocations)
        store.write(keys.day_key(keys.BILLED_CHARGEBACK, day, keys.COST_VARIANCE_PART), variance)
        for extension, data in report_files(chargeback, minor_unit).items():
            target.write_bytes(keys.chargeback_key(day, extension), data)
        for extension, data in report_files(variance, minor_unit).items():
            target.write_bytes(keys.cost_variance_key(day, extension), data)
        staged = read_parquet_bytes(target.read_bytes(keys.chargeback_key(day, "parquet")))
        record_partition(
            context,
            partition,
            {
                "cost_basis": "actual",
                "dagster/row_count": staged.num_rows,
                "export_run_id": month.run.run_id,
                "effective_cost": money_value(sum(staged["total_cost"].to_pylist(), Decimal(0)), currency, minor_unit),
                "billed_cost": money_value(sum(staged["billed_cost"].to_pylist(), Decimal(0)), currency, minor_unit),
                "estimated_cost": money_value(
                    sum(staged["estimated_cost"].to_pylist(), Decimal(0)), currency, minor_unit
                ),
                "currency": currency,
                "variance_by_product": markdown_table(variance.drop_columns(["usage_date"]), limit=20),
                "chargeback_csv": dg.MetadataValue.path(published.url(keys.chargeback_key(day, "csv"))),
            },
        )
        expected = checks.export_totals(month.rows, backends, day, minor_unit)
        judged += [
            (partition, checks.actual_matches_export(BILLED_CHARGEBACK_KEY, expected, checks.published_totals(staged))),
            (
                partition,
                checks.estimate_variance_within_share(
                    BILLED_CHARGEBACK_KEY, variance, warn_share, currency, minor_unit
                ),
            ),
        ]
    yield dg.MaterializeResult()
    yield from partition_checks.evaluations(context, judged)


def billed_chargeback_asset(calendar: Calendar) -> dg.AssetsDefinition:
    @partitioned_asset(
        BILLED_CHARGEBACK_KEY,
        calendar.daily,
        deps=[DAILY_CHARGEBACK_KEY],
        group_name="costs",
        kinds={"parquet", "csv"},
        description=(
            "The day's published chargeback, `daily/usage_date=YYYY-MM-DD/chargeback.{csv,parquet}`, with its cost "
            "basis: `estimate` (daily_chargeback's pricing-file prices, a list price) until a Cost Management "
            "FOCUS export covers the day, then `actual` (the export's EffectiveCost and BilledCost allocated to "
            "the same lines), with `cost_variance` on actual days. Staged; published by `day_publication`."
        ),
        checks={
            checks.ACTUAL_MATCHES_EXPORT: (
                "On an actual day, per resource, the published EffectiveCost and BilledCost equal the export's "
                "rows of that resource and day, summed and rounded once to the minor unit."
            ),
            checks.ESTIMATE_VARIANCE: (
                "Warns when a product's actual day differs from its estimate by more than the configured share "
                "(CHARGEBACK_COST_VARIANCE_WARN_SHARE)."
            ),
        },
    )
    def billed_chargeback(
        context: dg.AssetExecutionContext,
        lake: ObjectStoreResource,
        reports: ObjectStoreResource,
        pricing: PricingResource,
    ):
        yield from publish_billed_chargebacks(context, lake, reports, pricing)

    return billed_chargeback
