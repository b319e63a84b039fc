"""Before the what-if may advise, it must reproduce the past: at the PTU counts actually deployed, the
token model (pricing file: capacity per PTU, output weight) must give the saturation that was observed.

Compared over the measured window, at the deployed counts, minute by minute:
- saturated minutes: the model's minutes whose demand exceeds capacity against Azure's minutes at 100 %
  (`AzureOpenAIProvisionedManagedUtilizationV2`, PT1M), within max(SATURATED_MINUTES_SLACK,
  SATURATED_MINUTES_SHARE x observed); skipped when Azure reported no minute;
- spill: the model's overflow weighted tokens against the weighted tokens that did spill to
  pay-as-you-go, within max(SPILL_SHARE_OF_DEMAND x demand, SPILL_SHARE x observed spill);
- 429s: at least THROTTLED_IN_SATURATED_SHARE of the PTU's 429s fall in minutes the model saturates
  (a PTU throttles when full; 429s where the model sees room mean its capacity figure is too high).
A wrong capacity per PTU in the pricing file (or a wrong output weight, or logs missing demand) fails
at least one of them, and the advice is then "cannot calibrate", never a count.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction

from chargeback_pipeline.core.capacity.rightsizing import DemandHour, hour_overflow

SATURATED_MINUTES_SLACK = 10  # minutes: absolute tolerance on saturated minutes
SATURATED_MINUTES_SHARE = Fraction(1, 4)  # relative tolerance on saturated minutes
SPILL_SHARE_OF_DEMAND = Fraction(1, 200)  # 0.5 % of the window's demand: absolute tolerance on spill
SPILL_SHARE = Fraction(1, 4)  # relative tolerance on spill
THROTTLED_IN_SATURATED_SHARE = Fraction(4, 5)  # share of 429s that must fall in model-saturated minutes


@dataclass(frozen=True)
class ObservedHour:
    """What the hour showed, beside its `DemandHour`."""

    azure_saturated_minutes: int | None  # Azure's minutes at 100 %; None: no metric
    spill_weighted_tokens: int
    minute_throttled: tuple[int, ...]  # 429s per minute (60 values, or () unknown)


@dataclass(frozen=True)
class Calibration:
    model_saturated_minutes: int
    observed_saturated_minutes: int | None
    model_spill_weighted_tokens: int
    observed_spill_weighted_tokens: int
    throttled_requests: int
    throttled_in_model_saturated_minutes: int
    problems: tuple[str, ...]

    @property
    def calibrated(self) -> bool:
        return not self.problems


def calibrate(hours: Sequence[DemandHour], observed: Sequence[ObservedHour], tokens_per_ptu_hour: int) -> Calibration:
    model_minutes = 0
    model_spill = Fraction(0)
    demand = Fraction(0)
    throttled = throttled_in_saturated = 0
    azure_minutes: int | None = 0
    for hour, seen in zip(hours, observed, strict=True):
        overflow, minutes = hour_overflow(hour, hour.ptu_count, tokens_per_ptu_hour)
        model_minutes += len(minutes)
        model_spill += overflow
        demand += sum(hour.minute_demand) if any(hour.minute_demand) else hour.weighted_tokens
        throttled += sum(seen.minute_throttled)
        throttled_in_saturated += sum(seen.minute_throttled[m] for m in minutes if m < len(seen.minute_throttled))
        if seen.azure_saturated_minutes is None:
            azure_minutes = None
        elif azure_minutes is not None:
            azure_minutes += seen.azure_saturated_minutes
    observed_spill = sum(seen.spill_weighted_tokens for seen in observed)
    problems = []
    if azure_minutes is not None:
        allowed = max(SATURATED_MINUTES_SLACK, SATURATED_MINUTES_SHARE * azure_minutes)
        if abs(model_minutes - azure_minutes) > allowed:
            problems.append(
                f"saturated minutes: the model gives {model_minutes}, Azure's utilisation metric {azure_minutes} "
                f"(tolerance {float(allowed):g})"
            )
    allowed_spill = max(SPILL_SHARE_OF_DEMAND * demand, SPILL_SHARE * observed_spill)
    if abs(model_spill - observed_spill) > allowed_spill:
        problems.append(
            f"spill: the model gives {round(model_spill):,} weighted tokens, {observed_spill:,} spilled "
            f"(tolerance {round(allowed_spill):,})"
        )
    if throttled and throttled_in_saturated < THROTTLED_IN_SATURATED_SHARE * throttled:
        problems.append(
            f"429s: {throttled_in_saturated} of the PTU's {throttled} 429s fall in minutes the model saturates "
            f"(at least {float(THROTTLED_IN_SATURATED_SHARE):.0%} must)"
        )
    return Calibration(
        model_saturated_minutes=model_minutes,
        observed_saturated_minutes=azure_minutes,
        model_spill_weighted_tokens=round(model_spill),
        observed_spill_weighted_tokens=observed_spill,
        throttled_requests=throttled,
        throttled_in_model_saturated_minutes=throttled_in_saturated,
        problems=tuple(problems),
    )
