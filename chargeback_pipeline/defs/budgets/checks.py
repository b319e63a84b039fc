"""Checks of the budget status: business alerts, not broken data.

`within_budget` fails with severity WARN when a product's forecast or spend to date reaches its threshold
(CHARGEBACK_BUDGET_FORECAST_WARN_PERCENT, CHARGEBACK_BUDGET_ACTUAL_WARN_PERCENT) and with severity ERROR
once its spend to date is above the budget. `chargeback backfill` lists both under "alerts" and they do
not change its exit code (cli/check_summary.py: ALERT_CHECKS). `budgets_name_known_products` warns about a
budget whose product or subscription no published chargeback of the days looked at names (a typo, or a
product not live yet): no list of products exists before the data, so this is judged here, not at load.
"""

import dagster as dg

from chargeback_pipeline.core.finops.budgets import BudgetLine
from chargeback_pipeline.defs.metadata import markdown_rows, money_text

WITHIN_BUDGET = "within_budget"
BUDGETS_NAME_KNOWN_PRODUCTS = "budgets_name_known_products"


def crossed_rows(lines: list[BudgetLine], currency: str) -> list[dict]:
    keep = ("product_id", "subscription_id", "budget", "spend_to_date", "actual_percent", "forecast")
    return [
        {k: v for k, v in line.row(currency).items() if k in keep}
        | {"forecast_percent": line.forecast_percent, "status": line.status}
        for line in lines
        if line.crossed
    ]


def within_budget(
    asset: dg.AssetKey, lines: list[BudgetLine], currency: str, thresholds: str, minor_unit: int = 2
) -> dg.AssetCheckResult:
    crossed = [line for line in lines if line.crossed]
    over = [line for line in crossed if line.over_budget]
    worst = max(crossed, key=lambda line: (line.over_budget, line.forecast_percent), default=None)
    description = "Every budget is below its thresholds."
    if worst is not None:
        scope = worst.product_id + (f" / {worst.subscription_id}" if worst.subscription_id else "")
        description = (
            f"{len(over)} budget(s) over, {len(crossed) - len(over)} past a warning threshold; e.g. {scope}: "
            f"spent {money_text(worst.spend_to_date, currency, minor_unit)} ({worst.actual_percent:g} %) of "
            f"{money_text(worst.budget, currency, minor_unit)}, forecast "
            f"{money_text(worst.forecast, currency, minor_unit)} ({worst.forecast_percent:g} %)."
        )
    return dg.AssetCheckResult(
        asset_key=asset,
        check_name=WITHIN_BUDGET,
        passed=not crossed,
        severity=dg.AssetCheckSeverity.ERROR if over else dg.AssetCheckSeverity.WARN,
        description=description,
        metadata={
            "budget_days_over": len(over),
            "budget_days_past_warning": len(crossed) - len(over),
            "max_actual_percent": max((line.actual_percent for line in lines), default=0.0),
            "max_forecast_percent": max((line.forecast_percent for line in lines), default=0.0),
            "thresholds": dg.MetadataValue.text(thresholds),
            "crossed": markdown_rows(crossed_rows(lines, currency), 20, "_none_", currency, minor_unit),
        },
    )


def names_known_products(asset: dg.AssetKey, unknown: list[str], known: list[str]) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        asset_key=asset,
        check_name=BUDGETS_NAME_KNOWN_PRODUCTS,
        passed=not unknown,
        severity=dg.AssetCheckSeverity.WARN,
        description=(
            f"CHARGEBACK_BUDGETS_FILE budgets products or subscriptions no published chargeback names: "
            f"{', '.join(unknown)} (a typo, or not live yet)."
            if unknown
            else "Every budget names a product (and subscription) the published chargebacks name."
        ),
        metadata={"unknown_budget_settings": unknown, "known_products": known},
    )
