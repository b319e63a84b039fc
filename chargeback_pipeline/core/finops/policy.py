"""The thresholds of budgets and cost anomalies, declared once: settings read them from the environment
(CHARGEBACK_<NAME>), the `FinOpsPolicyResource` carries them to the assets."""

from pydantic import BaseModel, Field, model_validator


class FinOpsPolicy(BaseModel):
    # A product's check warns once its month-end forecast reaches this percent of its budget...
    budget_forecast_warn_percent: float = Field(default=80.0, gt=0, le=1000)
    # ...or its spend to date this percent (above 100 % of the budget it fails with severity ERROR).
    budget_actual_warn_percent: float = Field(default=100.0, gt=0, le=100)
    # A forecast alerts only on this many published days among the 7 its run rate averages (evidence).
    budget_forecast_min_days: int = Field(default=5, ge=1, le=7)
    # Cost anomalies: each product and model's day against the median and MAD of the days before it.
    anomaly_baseline_days: int = Field(default=28, ge=7, le=366)
    anomaly_min_history_days: int = Field(default=7, ge=3, le=366)
    anomaly_threshold: float = Field(default=3.5, gt=0, le=100)  # robust z-score (Iglewicz and Hoaglin)
    # An increase smaller than this (in the pricing file's currency) never pages anyone, however unusual.
    anomaly_min_cost_change: float = Field(default=25.0, ge=0)

    @model_validator(mode="after")
    def _history_within_baseline(self):
        if self.anomaly_min_history_days > self.anomaly_baseline_days:
            raise ValueError("CHARGEBACK_ANOMALY_MIN_HISTORY_DAYS must not exceed CHARGEBACK_ANOMALY_BASELINE_DAYS")
        return self

    def finops_thresholds(self) -> dict:
        """The FinOps thresholds alone (a subclass may carry more fields)."""
        return {name: getattr(self, name) for name in FinOpsPolicy.model_fields}
