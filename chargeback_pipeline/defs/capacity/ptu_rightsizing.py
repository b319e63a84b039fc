"""`ptu_rightsizing` (monthly): per PTU deployment, the month's utilisation percentiles, saturated hours,
spillover and its pay-as-you-go cost, and the what-if over PTU counts with the cheapest one."""

from datetime import UTC, datetime
from decimal import Decimal

import dagster as dg

from chargeback_pipeline.core.capacity.capacity_month import month_capacity
from chargeback_pipeline.core.capacity.monthly import month_rightsizing
from chargeback_pipeline.core.capacity.utilisation import PTU_UTILIZATION_SCHEMA
from chargeback_pipeline.core.capacity.what_if_plot import what_if_png
from chargeback_pipeline.core.periods import day_hours
from chargeback_pipeline.defs import partition_checks
from chargeback_pipeline.defs.capacity import checks
from chargeback_pipeline.defs.metadata import (
    log_run_totals,
    markdown_table,
    money_text,
    money_value,
    record_partition,
)
from chargeback_pipeline.defs.partitioned_asset import partitioned_asset
from chargeback_pipeline.defs.partitions import Calendar, month_partition_key, months_in
from chargeback_pipeline.defs.publishing.staging import staged_reports
from chargeback_pipeline.defs.resources import ObjectStoreResource, PricingResource
from chargeback_pipeline.storage import keys
from chargeback_pipeline.storage.report_files import report_files

PTU_RIGHTSIZING_KEY = dg.AssetKey("ptu_rightsizing")
PREVIEW_COLUMNS = [
    "backend_id",
    "deployment_name",
    "current_ptu_count",
    "p95_utilization_percent",
    "saturated_hours",
    "saturated_minutes",
    "model_saturated_minutes",
    "spillover_paygo_cost",
    "current_cost",
    "best_ptu_count",
    "best_cost",
    "saving",
    "action",
]


def _month_hours(month, now: datetime) -> list[datetime]:
    """The month's hours up to now: the month in progress is rightsized on its hours so far."""
    hours, day = [], month
    while day.month == month.month:
        hours += [hour for hour in day_hours(day) if hour < now]
        day = day.fromordinal(day.toordinal() + 1)
    return hours


def rightsize_months(
    context: dg.AssetExecutionContext, lake: ObjectStoreResource, reports: ObjectStoreResource, pricing: PricingResource
):
    # Staged: published by `month_publication` with the month's statement, or not at all.
    store, target, prices = lake.lake(), staged_reports(context, reports.store()), pricing.pricing()
    warn_saving = Decimal(pricing.rightsizing_warn_saving)
    now = datetime.now(UTC)
    minor_unit = prices.currency_minor_unit

    def amount(value: Decimal) -> dg.TextMetadataValue:
        return money_value(value, prices.currency, minor_unit)

    judged, run_saving = [], Decimal(0)
    months = months_in(context.partition_time_window)
    for month in months:
        measured = [h for h in _month_hours(month, now) if store.store.exists(keys.hour_key(keys.PTU_UTILIZATION, h))]
        hourly = store.read_many([keys.hour_key(keys.PTU_UTILIZATION, h) for h in measured], PTU_UTILIZATION_SCHEMA)
        summary, what_if = month_rightsizing(
            hourly,
            prices,
            month,
            pricing.ptu_increment,
            pricing.ptu_minimum,
            pricing.path,
            min_hours_to_cut=24 * pricing.rightsizing_min_days_to_cut,
        )
        for extension, data in report_files(summary, minor_unit).items():
            target.write_bytes(keys.ptu_rightsizing_key(month, extension), data)
        for extension, data in report_files(what_if, minor_unit).items():
            target.write_bytes(keys.ptu_what_if_key(month, extension), data)
        target.write_bytes(keys.ptu_what_if_key(month, "png"), what_if_png(what_if, f"{month:%Y-%m}", prices.currency))
        # The month's capacity as finance reads it (the statement shows it): idle capacity under every policy.
        for extension, data in report_files(month_capacity(hourly, prices, month), minor_unit).items():
            target.write_bytes(keys.ptu_capacity_key(month, extension), data)
        result = checks.ptu_count_is_cheapest(PTU_RIGHTSIZING_KEY, summary, warn_saving, minor_unit)
        for row in summary.to_pylist():
            context.log.info(
                f"PTU rightsizing {month:%Y-%m} {row['backend_id']}/{row['deployment_name']}: "
                f"{row['current_ptu_count']} PTU, p95 {row['p95_utilization_percent']}%, "
                f"{row['saturated_hours']} saturated hours, {row['saturated_minutes']} saturated minutes: "
                f"{row['recommendation']}"
            )
        numbers: dict[str, object] = {
            "dagster/row_count": summary.num_rows,
            "hours_measured": len(measured),
            "currency": prices.currency,
            "current_cost": amount(sum(summary["current_cost"].to_pylist(), Decimal(0))),
            "best_cost": amount(sum((c or 0 for c in summary["best_cost"].to_pylist()), Decimal(0))),
            "possible_saving": amount(sum((c or 0 for c in summary["saving"].to_pylist()), Decimal(0))),
            "saturated_hours": sum(summary["saturated_hours"].to_pylist()),
            "spillover_paygo_cost": amount(sum(summary["spillover_paygo_cost"].to_pylist(), Decimal(0))),
        }
        for row in summary.to_pylist():
            label = f"{row['backend_id']}/{row['deployment_name']}"
            numbers[f"p95_utilization_percent[{label}]"] = row["p95_utilization_percent"]
            numbers[f"action[{label}]"] = row["action"]
            if row["best_ptu_count"] is not None:
                numbers[f"best_ptu_count[{label}]"] = row["best_ptu_count"]
        record_partition(
            context,
            month_partition_key(month),
            {
                **numbers,
                "rightsizing": markdown_table(summary.select(PREVIEW_COLUMNS), 20, prices.currency, minor_unit),
                "what_if": markdown_table(
                    what_if.select(["backend_id", "deployment_name", "ptu_count", "total_cost", "saturated_minutes"]),
                    40,
                    prices.currency,
                    minor_unit,
                ),
                "rightsizing_csv": dg.MetadataValue.path(target.url(keys.ptu_rightsizing_key(month, "csv"))),
                "what_if_plot": dg.MetadataValue.path(target.url(keys.ptu_what_if_key(month, "png"))),
            },
        )
        run_saving += sum((c or 0 for c in summary["saving"].to_pylist()), Decimal(0))
        judged.append((month_partition_key(month), result))
    log_run_totals(
        context,
        "ptu_rightsizing",
        len(months),
        {"possible_saving": money_text(run_saving, prices.currency, minor_unit)},
    )
    yield dg.MaterializeResult()
    yield from partition_checks.evaluations(context, judged)


def ptu_rightsizing_asset(calendar: Calendar) -> dg.AssetsDefinition:
    @partitioned_asset(
        PTU_RIGHTSIZING_KEY,
        calendar.monthly,
        deps=["ptu_utilization"],
        group_name="capacity",
        kinds={"parquet", "csv", "matplotlib"},
        description=(
            "Per PTU deployment and month: p50/p95/p99 hourly utilisation, saturated hours and minutes, spillover "
            "tokens and their pay-as-you-go cost, and a what-if: the month's cost at each PTU count (PTU cost + the "
            "pay-as-you-go cost of the minute-level demand that would not fit; demand above capacity spills, nothing "
            "queues), calibrated first: advice (add / cut / keep) only when the what-if at the deployed count "
            "reproduces the observed saturated minutes, spill and 429s, else 'cannot calibrate'. "
            "`monthly/month=YYYY-MM/ptu_rightsizing.{csv,parquet}`, `ptu_capacity.{csv,parquet}` (count, rate, cost, "
            "utilisation, unused capacity and effective price per 1K tokens, for the statement), "
            "`ptu_what_if.{csv,parquet}` and the plot `ptu_rightsizing.png`. The month in progress covers its "
            "hours so far."
        ),
        checks={
            checks.PTU_COUNT_IS_CHEAPEST: (
                "Warns when a PTU deployment's cheapest count differs from its current one by a monthly saving "
                "above CHARGEBACK_RIGHTSIZING_WARN_SAVING."
            ),
        },
    )
    def ptu_rightsizing(
        context: dg.AssetExecutionContext,
        lake: ObjectStoreResource,
        reports: ObjectStoreResource,
        pricing: PricingResource,
    ):
        yield from rightsize_months(context, lake, reports, pricing)

    return ptu_rightsizing
