"""PTU rightsizing: what a month would have cost at other PTU counts, and the cheapest count.

The model (README "PTU utilisation and rightsizing"): each minute's demand is the weighted tokens the PTU
served plus those that spilled to pay-as-you-go (PTU capacity is sold per minute). At N PTU a minute holds
N x tokens-per-PTU-minute weighted tokens; demand above that spills to pay-as-you-go, none queues or is
lost, and what spills has the hour's own mix of prompt and completion tokens, so it costs its share of the
hour's demand priced pay-as-you-go. An hour without minutes (no minute data) is one block of N x
tokens-per-PTU-hour.
A count's month = sum over the deployed hours of N x the hour's cost per PTU + the pay-as-you-go cost of
the demand that would not have fit. Exact fractions throughout; money is rounded once, at the end.
"""

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from fractions import Fraction

# Bounded: a month's what-if never evaluates more counts than this (the largest are dropped first).
MAX_CANDIDATES = 200
# The service target a count must meet: at most this share of the measured minutes saturated (spilling or
# throttling). PTU is bought for guaranteed throughput, so the advice is the cheapest count that meets it,
# not the cheapest count outright (pay-as-you-go list prices are about the PTU's at full use, so cost
# alone would always say "cut to the minimum").
SATURATED_MINUTES_TARGET = Fraction(1, 100)


@dataclass(frozen=True)
class DemandHour:
    """One deployed hour of one PTU deployment."""

    hour: datetime
    weighted_tokens: Fraction  # demand: served + spilled, weighted
    ptu_count: int  # the count deployed in the hour
    cost_per_ptu: Fraction  # what one PTU costs in this hour (the rate in force)
    paygo_cost: Fraction  # what the hour's whole demand would cost pay-as-you-go
    minute_demand: tuple[int, ...] = ()  # weighted tokens per minute (served + spilled); () = not known


@dataclass(frozen=True)
class WhatIf:
    """A month at one PTU count (`ptu_count` None: the counts actually deployed, hour by hour)."""

    ptu_count: int | None
    ptu_cost: Fraction
    paygo_cost: Fraction
    saturated_hours: int
    overflow_weighted_tokens: Fraction
    saturated_minutes: int = 0  # minutes whose demand did not fit (hours without minute data count none)

    @property
    def total_cost(self) -> Fraction:
        return self.ptu_cost + self.paygo_cost


def hour_overflow(hour: DemandHour, count: int, tokens_per_ptu_hour: int) -> tuple[Fraction, list[int]]:
    """(weighted tokens that would not fit at `count` PTU, the minutes (0-59) that overflow)."""
    if any(hour.minute_demand):
        # In sixtieths of a token, so the 60 minutes x every candidate count of a month stay integer
        # arithmetic (exact, as Fractions would be, at a fraction of their cost).
        capacity = count * tokens_per_ptu_hour
        over = {minute: 60 * demand - capacity for minute, demand in enumerate(hour.minute_demand)}
        minutes = [minute for minute, extra in over.items() if extra > 0]
        return Fraction(sum(over[minute] for minute in minutes), 60), minutes
    return max(hour.weighted_tokens - count * tokens_per_ptu_hour, Fraction(0)), []


def what_if(hours: Sequence[DemandHour], ptu_count: int | None, tokens_per_ptu_hour: int) -> WhatIf:
    """The month at `ptu_count` PTU (None: each hour's own count)."""
    ptu_cost = paygo_cost = overflow_total = Fraction(0)
    saturated = saturated_minutes = 0
    for hour in hours:
        count = hour.ptu_count if ptu_count is None else ptu_count
        ptu_cost += count * hour.cost_per_ptu
        overflow, minutes = hour_overflow(hour, count, tokens_per_ptu_hour)
        if overflow > 0:
            saturated += 1
            saturated_minutes += len(minutes)
            overflow_total += overflow
            demand = sum(hour.minute_demand) if any(hour.minute_demand) else hour.weighted_tokens
            paygo_cost += hour.paygo_cost * min(overflow / demand, Fraction(1))
    return WhatIf(ptu_count, ptu_cost, paygo_cost, saturated, overflow_total, saturated_minutes)


def candidate_counts(
    current: int, peak_weighted_tokens: Fraction, tokens_per_ptu_hour: int, increment: int, minimum: int
) -> list[int]:
    """The counts worth pricing: `minimum`, then every `increment` up to one step above both the current
    count and the count no hour would overflow; plus the current count (whatever its step)."""
    if increment < 1 or minimum < 1 or tokens_per_ptu_hour < 1:
        raise ValueError("increment, minimum and tokens_per_ptu_hour must be positive")
    fits_peak = math.ceil(peak_weighted_tokens / tokens_per_ptu_hour)
    top = max(current, fits_peak, minimum)
    steps = min(math.ceil((top - minimum) / increment) + 1, MAX_CANDIDATES - 1)
    return sorted({*(minimum + increment * step for step in range(steps + 1)), current})


@dataclass(frozen=True)
class Rightsizing:
    current: WhatIf  # as deployed
    scenarios: list[WhatIf]  # one per candidate count, ascending
    best: WhatIf

    @property
    def saving(self) -> Fraction:
        return self.current.total_cost - self.best.total_cost


def meeting_target(scenarios: Sequence[WhatIf], current_count: int, measured_minutes: int) -> WhatIf:
    """The cheapest count whose saturated minutes stay within SATURATED_MINUTES_TARGET of the measured
    minutes (on a tie the current count, else the larger); none does: the count saturating least."""
    allowed = SATURATED_MINUTES_TARGET * measured_minutes
    meeting = [s for s in scenarios if s.saturated_minutes <= allowed]
    if not meeting:
        return min(scenarios, key=lambda s: (s.saturated_minutes, s.total_cost))
    return min(meeting, key=lambda s: (s.total_cost, s.ptu_count != current_count, -(s.ptu_count or 0)))


def rightsize(
    hours: Sequence[DemandHour], current_count: int, tokens_per_ptu_hour: int, increment: int, minimum: int
) -> Rightsizing:
    """Every candidate count's month, and the cheapest: on a tie the current count, else the larger count
    (the same money for fewer saturated hours). `month_rightsizing` advises with `meeting_target`."""
    # The peak a count must hold: the busiest hour, or 60x the busiest minute where minutes are known.
    peak = max(
        (max(hour.weighted_tokens, 60 * max(hour.minute_demand, default=0)) for hour in hours), default=Fraction(0)
    )
    counts = candidate_counts(current_count, peak, tokens_per_ptu_hour, increment, minimum)
    scenarios = [what_if(hours, count, tokens_per_ptu_hour) for count in counts]
    best = min(scenarios, key=lambda s: (s.total_cost, s.ptu_count != current_count, -(s.ptu_count or 0)))
    return Rightsizing(what_if(hours, None, tokens_per_ptu_hour), scenarios, best)


def nearest_rank_percentile(values: Sequence[float], percent: int) -> float | None:
    """The nearest-rank percentile (the smallest value with at least `percent` % of values at or below
    it): always one of the values, so p99 of a month's hours is an hour that happened."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(math.ceil(percent * len(ordered) / 100), 1) - 1]
