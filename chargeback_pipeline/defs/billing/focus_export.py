"""`focus_export` (daily): the FOCUS export of each day's chargeback, for FinOps tools.

It states what `billed_chargeback` decided for the day (the lake's copy of the staged chargeback): on an
estimate day the pricing file's split (FOCUS 1.3 by default, CHARGEBACK_FOCUS_VERSION: one allocated
charge per share of each PTU deployment-hour and pay-as-you-go deployment-day), on an actual day the Cost
Management export's charges as allocated (`focus_actual`: origin charges the export's own, its invoice).
1.2 (one row per chargeback line) for readers that need it. With a FinOps hubs target set, also the hubs
copy (`finops_hubs`): the estimate's 1.2 rows without a cost export; with one, on actual days only, the
export's charges reallocated (`actual_focus`), never added to Microsoft's own rows in the hub.
"""

from collections import Counter
from datetime import date
from decimal import Decimal

import dagster as dg
import pyarrow as pa

from chargeback_pipeline.core.billing.actual_focus import hub_rows
from chargeback_pipeline.core.billing.cost_basis import CostBasis, estimate_lines
from chargeback_pipeline.core.billing.focus import FOCUS_VERSIONS, to_focus
from chargeback_pipeline.core.billing.focus_1_3 import origin_charge_id, to_focus_1_3
from chargeback_pipeline.core.billing.focus_actual import actual_to_focus_1_3
from chargeback_pipeline.core.billing.pricing import Pricing
from chargeback_pipeline.defs import partition_checks
from chargeback_pipeline.defs.billing import checks, finops_hubs
from chargeback_pipeline.defs.freshness import DAILY_MONEY_FRESHNESS
from chargeback_pipeline.defs.metadata import log_run_totals, money_text, money_value, record_partition
from chargeback_pipeline.defs.partitioned_asset import partitioned_asset
from chargeback_pipeline.defs.partitions import Calendar, day_partition_key, days_in
from chargeback_pipeline.defs.publishing.staging import staged_hub, staged_reports
from chargeback_pipeline.defs.resources import FocusExportResource, ObjectStoreResource, PricingResource
from chargeback_pipeline.storage import keys
from chargeback_pipeline.storage.lake import Lake
from chargeback_pipeline.storage.parquet_bytes import read_parquet_bytes
from chargeback_pipeline.storage.report_files import report_files

FOCUS_EXPORT_KEY = dg.AssetKey("focus_export")


class FocusDay:
    """What the export states for a day: the chargeback `billed_chargeback` decided (estimate or actual),
    and on an actual day the export's charges as allocated to its lines."""

    def __init__(self, store: Lake, day: date):
        billed = keys.day_key(keys.BILLED_CHARGEBACK, day)
        self.lines = (
            store.read(billed)
            if store.store.exists(billed)
            else estimate_lines(store.read(keys.day_key(keys.DAILY_CHARGEBACK, day)))
        )
        self.actual = CostBasis.actual.value in set(self.lines["cost_basis"].to_pylist())
        self.allocations = (
            store.read(keys.day_key(keys.BILLED_CHARGEBACK, day, keys.ACTUAL_ALLOCATIONS_PART)) if self.actual else None
        )

    def invoice(self) -> tuple[str, str] | None:
        """The export's one invoice of an actual day (InvoiceId, InvoiceIssuerName); None when several."""
        if self.allocations is None:
            return None
        columns = (self.allocations[c].to_pylist() for c in ("invoice_id", "invoice_issuer_name"))
        invoices = set(zip(*columns, strict=True))
        return invoices.pop() if len(invoices) == 1 else None


def _focus_table(version: str, store: Lake, day: date, focus_day: FocusDay, prices: Pricing) -> pa.Table:
    if version == "1.2":
        return to_focus(focus_day.lines, prices, focus_day.invoice(), focus_day.allocations)
    if focus_day.allocations is not None:
        return actual_to_focus_1_3(focus_day.allocations, prices)
    key = keys.day_key(keys.DAILY_CHARGEBACK, day, keys.ORIGIN_ALLOCATIONS_PART)
    if not store.store.exists(key):
        raise dg.Failure(
            f"{store.store.url(key)} does not exist: the chargeback of {day} was published before its split "
            "was kept. Re-materialize daily_chargeback for that day (the lines come out identical), or set "
            "CHARGEBACK_FOCUS_VERSION=1.2."
        )
    return to_focus_1_3(store.read(key), prices)


def _expected_and_exported(version: str, day: date, focus_day: FocusDay, exported: pa.Table, store: Lake) -> tuple:
    """{(day, kind, name): cost} of the export read back and of its references: per product the BilledCost
    and EffectiveCost against the chargeback's billed_cost and total_cost; in 1.3 also every origin
    charge's rows against the origin's cost (the pricing file's split, or the export's charge)."""
    lines = focus_day.lines
    product_column = "SubAccountId" if version == "1.2" else "x_ApiManagementProductId"
    published = _kind(checks.PRODUCT_ROWS, checks.cost_per_product(exported, day, product_column, "BilledCost"))
    expected = _kind(checks.PRODUCT_ROWS, checks.cost_per_product(lines, day, "product_id", "billed_cost"))
    published |= _kind(
        checks.PRODUCT_EFFECTIVE, checks.cost_per_product(exported, day, product_column, "EffectiveCost")
    )
    expected |= _kind(checks.PRODUCT_EFFECTIVE, checks.cost_per_product(lines, day, "product_id", "total_cost"))
    if version != "1.2":
        # A product whose tokens fell only in hours that cost nothing (a PTU deployment not yet priced) has
        # no share of any origin charge: nothing to export, and nothing billed.
        expected = {key: cost for key, cost in expected.items() if cost or key in published}
        if focus_day.allocations is not None:
            origins = {
                row["origin_charge_id"]: row["origin_billed_cost"]
                for row in focus_day.allocations.select(["origin_charge_id", "origin_billed_cost"]).to_pylist()
            }
        else:
            split = store.read(keys.day_key(keys.DAILY_CHARGEBACK, day, keys.ORIGIN_ALLOCATIONS_PART))
            origins = {origin_charge_id(row): row["origin_cost"] for row in split.to_pylist()}
        expected.update({(str(day), checks.ORIGIN_CHARGES, origin): cost for origin, cost in origins.items()})
        by_origin: Counter = Counter()
        origin_ids, costs = exported["x_OriginChargeId"].to_pylist(), exported["BilledCost"].to_pylist()
        for origin, cost in zip(origin_ids, costs, strict=True):
            by_origin[(str(day), checks.ORIGIN_CHARGES, origin)] += cost
        published.update(by_origin)
    return published, expected


def _kind(kind: str, totals: Counter) -> dict:
    return {(period, kind, name): cost for (period, name), cost in totals.items()}


def export_focus(
    context: dg.AssetExecutionContext,
    lake: ObjectStoreResource,
    reports: ObjectStoreResource,
    pricing: PricingResource,
    focus: FocusExportResource,
):
    """Export every day of the run; each day's materialization carries its own rows, billed cost and file,
    and the check compares each day's export, read back, with its chargeback (and in 1.3 each origin
    charge's rows with the origin's cost)."""
    if focus.version not in FOCUS_VERSIONS:
        raise dg.Failure(f"CHARGEBACK_FOCUS_VERSION must be one of {', '.join(FOCUS_VERSIONS)}, got {focus.version!r}")
    store, prices = lake.lake(), pricing.pricing()
    hubs_store = focus.hubs_store()
    # With the Cost Management export, the hub holds Microsoft's own rows: the copy is then the export's
    # charges reallocated, on actual days only (an estimate there would add to Microsoft's rows).
    reallocate = pricing.cost_export is not None and pricing.cost_export.is_configured()
    # Staged: published by `day_publication` with the day's other outputs, or not at all.
    target = staged_reports(context, reports.store())
    hub = staged_hub(context, reports.store(), hubs_store)
    minor_unit, currency = prices.currency_minor_unit, prices.currency
    judged, rows, billed, hub_months = [], 0, Decimal(0), set()
    for day in days_in(context.partition_time_window):
        focus_day = FocusDay(store, day)
        lines = focus_day.lines
        table = _focus_table(focus.version, store, day, focus_day, prices)
        for extension, data in report_files(table, prices.currency_minor_unit).items():
            target.write_bytes(keys.focus_key(day, extension), data)
        read_back = read_parquet_bytes(target.read_bytes(keys.focus_key(day, "parquet")))
        exported, expected = _expected_and_exported(focus.version, day, focus_day, read_back, store)
        day_billed = sum(read_back["BilledCost"].to_pylist(), Decimal(0))
        hub_metadata = {}
        copy = None
        if hub is not None and focus_day.allocations is not None:  # actual, even if the export is off now
            copy = hub_rows(focus_day.allocations)
        elif hub is not None and not reallocate:
            copy = table if focus.version == "1.2" else to_focus(lines, prices)
        if copy is not None:
            changed, hub_billed = finops_hubs.publish_day(hub, day, copy, focus.hubs_scope_path)
            if changed:
                hub_months.add(day.replace(day=1))
            # The hubs copy bills what the chargeback does, per day (read back; a reallocation's shares).
            exported[(str(day), checks.HUBS_COPY, "FinOps hubs copy")] = hub_billed
            expected[(str(day), checks.HUBS_COPY, "FinOps hubs copy")] = sum(
                lines["billed_cost"].to_pylist(), Decimal(0)
            )
            hub_url = hub.url(keys.finops_hubs_file_key(day, focus.hubs_scope_path))
            hub_metadata = {"finops_hubs_file": dg.MetadataValue.path(hub_url)}
        record_partition(
            context,
            day_partition_key(day),
            {
                "dagster/row_count": read_back.num_rows,
                "focus_version": focus.version,
                "cost_basis": CostBasis.actual.value if focus_day.actual else CostBasis.estimate.value,
                "billed_cost": money_value(day_billed, currency, minor_unit),
                "currency": currency,
                "focus_csv": dg.MetadataValue.path(target.url(keys.focus_key(day, "csv"))),
                **hub_metadata,
            },
        )
        judged.append(
            (
                day_partition_key(day),
                checks.totals_match_by_kind(
                    FOCUS_EXPORT_KEY, checks.FOCUS_MATCHES_CHARGEBACK, exported, expected, currency, minor_unit
                ),
            )
        )
        rows += read_back.num_rows
        billed += day_billed
    for month in sorted(hub_months):  # after the month's files: the hub ingests the folder on the manifest
        context.log.info(f"FinOps hubs: {finops_hubs.signal_month(hub, month, focus.hubs_scope_path)} written")
    log_run_totals(
        context, "focus_export", len(judged), {"rows": rows, "billed cost": money_text(billed, currency, minor_unit)}
    )
    yield dg.MaterializeResult()
    yield from partition_checks.evaluations(context, judged)


def focus_export_asset(calendar: Calendar) -> dg.AssetsDefinition:
    @partitioned_asset(
        FOCUS_EXPORT_KEY,
        calendar.daily,
        deps=["daily_chargeback", "billed_chargeback"],
        group_name="costs",
        freshness_policy=DAILY_MONEY_FRESHNESS,
        kinds={"parquet", "csv"},
        description=(
            "The day's chargeback as a FOCUS cost and usage dataset, `daily/usage_date=YYYY-MM-DD/focus.csv` and "
            "`.parquet` (custom columns prefixed x_), on the chargeback's cost basis (x_CostBasis). FOCUS 1.3 by "
            "default: each origin charge (estimate: PTU deployment-hour, pay-as-you-go deployment-day; actual: "
            "the Cost Management export's charge) split into allocated charges (Allocated* columns) that sum to it; "
            "CHARGEBACK_FOCUS_VERSION=1.2: one row per chargeback line. With CHARGEBACK_FINOPS_HUBS_* set, also "
            "a FinOps hubs copy. Built from the published chargeback only, so a day held back by reconciliation "
            "gets no new export either."
        ),
        checks={
            checks.FOCUS_MATCHES_CHARGEBACK: (
                "The day's published export, read back, bills exactly the chargeback's cost per product (1.3: "
                "and each origin charge's rows sum to its cost; with FinOps hubs: the hubs copy bills the day)."
            ),
        },
    )
    def focus_export(
        context: dg.AssetExecutionContext,
        lake: ObjectStoreResource,
        reports: ObjectStoreResource,
        pricing: PricingResource,
        focus: FocusExportResource,
    ):
        yield from export_focus(context, lake, reports, pricing, focus)

    return focus_export
