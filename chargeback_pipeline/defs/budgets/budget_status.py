"""`budget_status` (daily): each budgeted product's (and subscription's) spend to date, month-end forecast
and percent of budget, from the published daily chargebacks; published as
`daily/usage_date=YYYY-MM-DD/budget_status.csv` and `.parquet`."""

from dataclasses import asdict
from datetime import date

import dagster as dg
import pyarrow as pa

from chargeback_pipeline.core.finops import budgets as core
from chargeback_pipeline.core.finops.alerts import budget_alerts
from chargeback_pipeline.core.finops.inputs import PublishedDays
from chargeback_pipeline.defs import partition_checks
from chargeback_pipeline.defs.budgets import checks
from chargeback_pipeline.defs.freshness import DAILY_MONEY_FRESHNESS
from chargeback_pipeline.defs.metadata import log_run_totals, markdown_rows, money_value, record_partition
from chargeback_pipeline.defs.partitioned_asset import partitioned_asset
from chargeback_pipeline.defs.partitions import Calendar, day_partition_key, days_in
from chargeback_pipeline.defs.publishing.staging import staged_reports
from chargeback_pipeline.defs.resources import FinOpsPolicyResource, ObjectStoreResource, PricingResource
from chargeback_pipeline.storage import keys
from chargeback_pipeline.storage.report_files import report_files
from chargeback_pipeline.storage.schemas import MONEY, MONTH

BUDGET_STATUS_KEY = dg.AssetKey("budget_status")
BUDGET_STATUS_SCHEMA = pa.schema(
    [
        ("usage_date", pa.date32()),
        ("month", MONTH),
        ("product_id", pa.string()),
        ("subscription_id", pa.string()),  # empty on a product's whole budget
        ("currency", pa.string()),
        ("budget", MONEY),
        ("spend_to_date", MONEY),
        ("actual_percent", pa.float64()),
        ("run_rate_per_day", MONEY),
        ("run_rate_days", pa.int32()),
        ("forecast", MONEY),
        ("forecast_percent", pa.float64()),
        ("days_published", pa.int32()),
        ("days_in_month", pa.int32()),
        ("days_missing", pa.int32()),  # past days of the month not published: a data gap, not projected
        ("days_to_come", pa.int32()),  # days after usage_date: the only days the forecast projects
        ("forecast_can_alert", pa.bool_()),  # enough published days in the run rate to alert on the forecast
        ("status", pa.string()),  # ok, forecast_<p>pct, actual_<p>pct or over_budget (the worst crossed)
    ]
)


def _days_needed(day: date) -> list[date]:
    month_days = [day.replace(day=n) for n in range(1, day.day + 1)]
    return sorted(set(month_days) | set(core.run_rate_window(day)))


def build_budget_status(
    context: dg.AssetExecutionContext,
    lake: ObjectStoreResource,
    reports: ObjectStoreResource,
    pricing: PricingResource,
    finops: FinOpsPolicyResource,
):
    budgets, prices, target = finops.budgets(), pricing.pricing(), staged_reports(context, reports.store())
    currency, minor_unit = prices.currency, prices.currency_minor_unit
    limits = core.thresholds(finops.budget_forecast_warn_percent, finops.budget_actual_warn_percent)
    thresholds = (
        f"warn at {finops.budget_forecast_warn_percent:g} % forecast (once {finops.budget_forecast_min_days} of "
        f"the last {core.RUN_RATE_DAYS} days are published) or {finops.budget_actual_warn_percent:g} % spent; "
        "error above the budget"
    )
    published = PublishedDays(target)  # published days, and the ones this run staged
    judged, crossed_total, over_total = [], 0, 0
    for day in days_in(context.partition_time_window):
        costs = {d: core.scope_costs(lines) for d, lines in published.lines(_days_needed(day)).items()}
        lines = (
            core.budget_lines(day, costs, budgets, limits, minor_unit, finops.budget_forecast_min_days)
            if budgets
            else []
        )
        table = pa.Table.from_pylist([line.row(currency) for line in lines], schema=BUDGET_STATUS_SCHEMA)
        for extension, data in report_files(table, minor_unit).items():
            target.write_bytes(keys.budget_status_key(day, extension), data)
        seen = {scope for day_costs in costs.values() for scope in day_costs}
        unknown = core.unknown_scopes(budgets, day, seen) if budgets else []
        alerts = budget_alerts(lines, currency, minor_unit)
        product_lines = [line for line in lines if line.subscription_id is None]
        record_partition(
            context,
            day_partition_key(day),
            {
                "dagster/row_count": table.num_rows,
                "currency": currency,
                "budgets_file": finops.budgets_file or "not configured (CHARGEBACK_BUDGETS_FILE)",
                "budgets_crossed": sum(1 for line in lines if line.crossed),
                "budgets_over": sum(1 for line in lines if line.over_budget),
                "spend_to_date": money_value(
                    sum((line.spend_to_date for line in product_lines), 0), currency, minor_unit
                ),
                "days_missing": max((line.days_missing for line in lines), default=0),
                "forecast": money_value(sum((line.forecast for line in product_lines), 0), currency, minor_unit),
                # One labelled number per product and day: the UI plots each over the partitions.
                **{f"forecast_percent/{line.product_id}": line.forecast_percent for line in product_lines},
                **{f"actual_percent/{line.product_id}": line.actual_percent for line in product_lines},
                "status": markdown_rows(
                    [line.row(currency) for line in lines], 30, currency=currency, minor_unit=minor_unit
                ),
                "alerts": dg.MetadataValue.json([asdict(alert) for alert in alerts]) if alerts else None,
                "budget_status_csv": dg.MetadataValue.path(target.url(keys.budget_status_key(day, "csv"))),
            },
        )
        key = day_partition_key(day)
        judged.append((key, checks.within_budget(BUDGET_STATUS_KEY, lines, currency, thresholds, minor_unit)))
        known = sorted({product for product, _ in seen})
        judged.append((key, checks.names_known_products(BUDGET_STATUS_KEY, unknown, known)))
        crossed_total += sum(1 for line in lines if line.crossed)
        over_total += sum(1 for line in lines if line.over_budget)
    totals = {"budget-days crossed": crossed_total, "budget-days over": over_total}
    log_run_totals(context, "budget_status", len(judged) // 2, totals)
    yield dg.MaterializeResult()
    yield from partition_checks.evaluations(context, judged)


def budget_status_asset(calendar: Calendar) -> dg.AssetsDefinition:
    @partitioned_asset(
        BUDGET_STATUS_KEY,
        calendar.daily,
        deps=["billed_chargeback"],  # it reads the chargeback billed_chargeback stages
        group_name="finops",
        freshness_policy=DAILY_MONEY_FRESHNESS,
        kinds={"parquet", "csv"},
        description=(
            "Per budgeted product (and subscription, CHARGEBACK_BUDGETS_FILE): the month's spend to date, the "
            "month-end forecast (spend to date + the mean daily cost of the published days among the last 7 x "
            "the days after the partition's day; past days never published are a data gap, `days_missing`, not "
            "projected) and both as a percent of the month's budget. A forecast alerts only once "
            "CHARGEBACK_BUDGET_FORECAST_MIN_DAYS (5) of its 7 days are published (`forecast_can_alert`): "
            "`daily/usage_date=YYYY-MM-DD/budget_status.csv` and `.parquet`. Crossings are alerts (the "
            "`budget_and_anomaly_alerts` sensor posts each once to CHARGEBACK_ALERT_WEBHOOK_URL)."
        ),
        checks={
            checks.WITHIN_BUDGET: (
                "Each budget's forecast and spend to date stay below their warning thresholds (WARN), and its "
                "spend to date within the budget (ERROR). A business alert: it does not fail `chargeback backfill`."
            ),
            checks.BUDGETS_NAME_KNOWN_PRODUCTS: (
                "Every budget names a product (and subscription) the month's published chargebacks name."
            ),
        },
    )
    def budget_status(
        context: dg.AssetExecutionContext,
        lake: ObjectStoreResource,
        reports: ObjectStoreResource,
        pricing: PricingResource,
        finops: FinOpsPolicyResource,
    ):
        yield from build_budget_status(context, lake, reports, pricing, finops)

    return budget_status
