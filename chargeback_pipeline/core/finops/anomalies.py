"""Cost anomalies: each product and model's day against the trailing days before it, with robust statistics.

Method (README "Budgets and anomalies"): the baseline is the median and the median absolute deviation (MAD)
of the product and model's daily cost (and tokens) over the published days among the `baseline_days`
before the day; a published day on which it had no line counts as 0 (it truly cost nothing), a day not
published is left out. The score is the robust z-score (x - median) / (1.4826 * MAD): 1.4826 makes the MAD
estimate a standard deviation for normal data, and a median is not dragged by the spike it must find
(a mean and standard deviation would be). The scale is floored at MIN_RELATIVE_SCALE of the median, so a
flat history (MAD 0) does not turn a cent's change into an infinite score.

An anomaly is an INCREASE whose cost or token score reaches `threshold` (3.5, Iglewicz and Hoaglin's
outlier cut-off) and whose cost grew by at least `min_cost_change`: tiny products never page anyone.
Decreases are not flagged: on a shared PTU deployment one product's spike lowers every other product's
share of the same fixed cost, and those drops would only be noise. Days with fewer than
`min_history_days` published days before them are judged "insufficient history", never anomalous.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from statistics import median

from chargeback_pipeline.core.finops.policy import FinOpsPolicy

MAD_TO_SIGMA = 1.4826
MIN_RELATIVE_SCALE = 0.05
# (product_id, model_name) -> (cost, tokens) of one day
Key = tuple[str, str]
DayCosts = Mapping[Key, tuple[Decimal, int]]


def day_costs(lines) -> dict[Key, tuple[Decimal, int]]:
    """A day's cost and tokens per product and model, from its chargeback lines (dicts)."""
    totals: dict[Key, tuple[Decimal, int]] = {}
    for line in lines:
        key = (line["product_id"], line["model_name"])
        cost, tokens = totals.get(key, (Decimal(0), 0))
        totals[key] = (cost + line["total_cost"], tokens + line["prompt_tokens"] + line["completion_tokens"])
    return totals


def baseline_window(day: date, baseline_days: int) -> list[date]:
    return [day - timedelta(days=n) for n in range(baseline_days, 0, -1)]


def robust_score(value: float, history: list[float]) -> tuple[float, float, float]:
    """(median, MAD, robust z-score of `value`) of a non-empty history."""
    center = median(history)
    mad = median(abs(x - center) for x in history)
    scale = max(MAD_TO_SIGMA * mad, MIN_RELATIVE_SCALE * abs(center))
    if scale == 0:  # an all-zero history: any increase is off the scale
        return center, mad, (float("inf") if value > center else 0.0)
    return center, mad, (value - center) / scale


@dataclass(frozen=True)
class Judgement:
    usage_date: date
    product_id: str
    model_name: str
    cost: Decimal
    tokens: int
    history_days: int
    baseline_cost: float | None = None
    cost_mad: float | None = None
    cost_score: float | None = None
    baseline_tokens: float | None = None
    tokens_score: float | None = None
    is_anomaly: bool = False
    reason: str = ""

    @property
    def cost_change(self) -> float | None:
        return None if self.baseline_cost is None else round(float(self.cost) - self.baseline_cost, 6)

    def row(self, currency: str) -> dict:
        def rounded(value: float | None) -> float | None:
            return None if value is None or value in (float("inf"), float("-inf")) else round(value, 3)

        return {
            "usage_date": self.usage_date,
            "product_id": self.product_id,
            "model_name": self.model_name,
            "currency": currency,
            "cost": self.cost,
            "baseline_median_cost": rounded(self.baseline_cost),
            "cost_mad": rounded(self.cost_mad),
            "cost_change": rounded(self.cost_change),
            "cost_score": rounded(self.cost_score),
            "tokens": self.tokens,
            "baseline_median_tokens": rounded(self.baseline_tokens),
            "tokens_score": rounded(self.tokens_score),
            "history_days": self.history_days,
            "is_anomaly": self.is_anomaly,
            "reason": self.reason,
        }


def judge_day(day: date, today: DayCosts, history: Mapping[date, DayCosts], policy: FinOpsPolicy) -> list[Judgement]:
    """Every product and model of `day` (and of its baseline) judged against the baseline: `history` holds
    the published days of the baseline window (a day absent is not published)."""
    window = [d for d in baseline_window(day, policy.anomaly_baseline_days) if d in history]
    keys = sorted(set(today) | {key for d in window for key in history[d]})
    judged = []
    for key in keys:
        cost, tokens = today.get(key, (Decimal(0), 0))
        if len(window) < policy.anomaly_min_history_days:
            judged.append(
                Judgement(day, *key, cost, tokens, len(window), reason=f"insufficient history ({len(window)} days)")
            )
            continue
        past = [history[d].get(key, (Decimal(0), 0)) for d in window]
        base_cost, mad, cost_score = robust_score(float(cost), [float(c) for c, _ in past])
        base_tokens, _, tokens_score = robust_score(float(tokens), [float(t) for _, t in past])
        unusual = max(cost_score, tokens_score) >= policy.anomaly_threshold
        grew = Decimal(str(float(cost) - base_cost)) >= Decimal(str(policy.anomaly_min_cost_change))
        reason = "anomaly" if unusual and grew else ("below the cost floor" if unusual else "")
        judged.append(
            Judgement(day, *key, cost, tokens, len(window), base_cost, mad, cost_score, base_tokens, tokens_score,
                      unusual and grew, reason)
        )  # fmt: skip
    return judged
