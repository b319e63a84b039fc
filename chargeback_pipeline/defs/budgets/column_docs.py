"""Column schemas, descriptions and code references of the FinOps assets, `budget_status` and
`cost_anomalies` (merged into `defs/column_docs.py`, which shows them in the UI)."""

from chargeback_pipeline.defs.anomalies.cost_anomalies import COST_ANOMALIES_SCHEMA
from chargeback_pipeline.defs.budgets.budget_status import BUDGET_STATUS_SCHEMA

FINOPS_COLUMNS = {"budget_status": BUDGET_STATUS_SCHEMA, "cost_anomalies": COST_ANOMALIES_SCHEMA}
FINOPS_CODE = {
    "budget_status": ["core/finops/budgets.py", "core/finops/alerts.py"],
    "cost_anomalies": ["core/finops/anomalies.py", "core/finops/alerts.py"],
}
FINOPS_DESCRIPTIONS = {
    "budget_status": {
        "usage_date": "The day judged (UTC): the month's status after this day.",
        "month": "The budget's month (YYYY-MM).",
        "product_id": "The budgeted APIM product (CHARGEBACK_BUDGETS_FILE `products.<id>`).",
        "subscription_id": "The budgeted APIM subscription of the product; empty on the product's whole budget.",
        "currency": "The pricing file's currency.",
        "budget": "The month's budget: the entry in force on the month's first day.",
        "spend_to_date": "Total cost of the month's published days up to this one.",
        "actual_percent": "spend_to_date / budget, in percent.",
        "run_rate_per_day": "Mean daily cost of the published days among the last 7 (previous month's included).",
        "run_rate_days": "How many published days the run rate averages (at most 7).",
        "forecast": "spend_to_date + run_rate_per_day x days_to_come (past days never published are not projected).",
        "forecast_percent": "forecast / budget, in percent.",
        "days_published": "Days of the month up to this one with a published chargeback.",
        "days_in_month": "Days of the month.",
        "days_missing": "Past days of the month up to this one without a published chargeback: a data gap, "
        "neither projected nor counted (spend_to_date and forecast are lower bounds while it lasts).",
        "days_to_come": "Days of the month after this one: the only days the forecast projects.",
        "forecast_can_alert": "Whether the run rate averages at least CHARGEBACK_BUDGET_FORECAST_MIN_DAYS (5) "
        "published days; if not, the forecast crosses no threshold and alerts nobody.",
        "status": "ok, or the worst threshold crossed: forecast_<p>pct, actual_<p>pct, over_budget.",
    },
    "cost_anomalies": {
        "usage_date": "The day judged (UTC).",
        "product_id": "APIM product (or the chargeback's reserved lines: unattributed, logged-not-billable...).",
        "model_name": "The model.",
        "currency": "The pricing file's currency.",
        "cost": "The day's total cost of this product and model.",
        "baseline_median_cost": "Median daily cost over the published days of the baseline (28 before).",
        "cost_mad": "Median absolute deviation of those daily costs.",
        "cost_change": "cost - baseline_median_cost.",
        "cost_score": "Robust z-score: cost_change / (1.4826 x MAD), the scale at least 5 % of the median.",
        "tokens": "The day's prompt + completion tokens.",
        "baseline_median_tokens": "Median daily tokens over the baseline.",
        "tokens_score": "Robust z-score of the tokens.",
        "history_days": "Published days in the baseline.",
        "is_anomaly": "A score of CHARGEBACK_ANOMALY_THRESHOLD or more and an increase of _MIN_COST_CHANGE or more.",
        "reason": "anomaly, below the cost floor, insufficient history (N days), or empty.",
    },
}
