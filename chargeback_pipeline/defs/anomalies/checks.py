"""The anomaly check: a business alert, not broken data (severity WARN; `chargeback backfill` lists it under
"alerts" without changing its exit code), with the numbers that explain each anomaly."""

import dagster as dg

from chargeback_pipeline.core.finops.anomalies import Judgement
from chargeback_pipeline.core.finops.policy import FinOpsPolicy
from chargeback_pipeline.defs.metadata import markdown_rows, money_text

NO_COST_ANOMALY = "no_cost_anomaly"
# Amounts of the anomalies table that are statistics of money (floats): written as money, at the minor unit.
MONEY_COLUMNS = ("cost", "baseline_median_cost", "cost_mad", "cost_change")
EXPLAINING = ("product_id", "model_name", "cost", "baseline_median_cost", "cost_mad", "cost_score", "cost_change",
              "tokens", "baseline_median_tokens", "tokens_score", "history_days")  # fmt: skip


def no_cost_anomaly(
    asset: dg.AssetKey, judged: list[Judgement], currency: str, policy: FinOpsPolicy, minor_unit: int = 2
) -> dg.AssetCheckResult:
    anomalies = sorted((j for j in judged if j.is_anomaly), key=lambda j: -(j.cost_change or 0))
    history = max((j.history_days for j in judged), default=0)
    description = (
        f"No product and model's cost rose beyond a robust z-score of {policy.anomaly_threshold:g} "
        f"(and by {policy.anomaly_min_cost_change:g} {currency} or more) against its baseline."
    )
    if anomalies:
        first = anomalies[0]
        description = (
            f"{len(anomalies)} cost anomaly(ies); largest: {first.product_id} / {first.model_name} cost "
            f"{money_text(first.cost, currency, minor_unit)} against a median of "
            f"{money_text(first.baseline_cost, currency, minor_unit)} over "
            f"{first.history_days} "
            f"days (score {first.cost_score:.1f}, tokens score {first.tokens_score:.1f})."
        )
    judged_day = bool(anomalies) or history >= policy.anomaly_min_history_days
    if not judged_day:
        description = (
            f"Not judged: {history} published day(s) before this one, fewer than "
            f"CHARGEBACK_ANOMALY_MIN_HISTORY_DAYS={policy.anomaly_min_history_days}."
        )
    rows = [{k: v for k, v in j.row(currency).items() if k in EXPLAINING} for j in anomalies]
    return dg.AssetCheckResult(
        asset_key=asset,
        check_name=NO_COST_ANOMALY,
        # A day that could not be judged is no pass: a warning that says why (`judged` false), which the
        # command line does not list among the alerts.
        passed=not anomalies and judged_day,
        severity=dg.AssetCheckSeverity.WARN,
        description=description,
        metadata={
            "judged": judged_day,
            "anomalies": len(anomalies),
            "max_cost_score": max(
                (round(j.cost_score, 3) for j in judged if j.cost_score is not None and j.cost_score != float("inf")),
                default=0.0,
            ),
            "max_history_days": history,
            "anomalous": [f"{j.product_id}/{j.model_name}" for j in anomalies],
            "explained": markdown_rows(rows, 20, "_none_", currency, minor_unit, MONEY_COLUMNS),
        },
    )
