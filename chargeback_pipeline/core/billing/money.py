"""Exact money in whole minor units: largest-remainder splits and the cumulative rounding of PTU hours.

- A PTU hour's exact cost is rounded cumulatively over its calendar month: hour cost =
  round(C(h+1)) - round(C(h)), where C(h) is the exact cost of the month's first h hours (half to
  even). A month's hours therefore sum exactly to its rounded monthly cost.
- A split is a largest-remainder split: each share gets its exact amount rounded down, and the units
  left over go to the largest remainders (ties: by a caller-given order). The shares sum exactly to
  the total, none is negative, and each is within one minor unit of its exact amount.
"""

import math
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from fractions import Fraction

from chargeback_pipeline.core.billing.pricing import Deployment, Pricing
from chargeback_pipeline.core.periods import day_hours, utc_day_start


def split_by_largest_remainder(total: int, exact: Sequence[Fraction], order: Sequence[tuple]) -> list[int]:
    """Whole minor units summing to `total`, each the floor of its exact amount or one more.

    The units left after flooring go to the largest fractional remainders, ties broken by `order`
    (ascending), so the result is deterministic. `total` must lie between the sum of the floors and
    that sum plus the number of amounts (true when it is the exact sum, or the exact sum rounded).
    """
    floors = [math.floor(amount) for amount in exact]
    left_over = total - sum(floors)
    if not 0 <= left_over <= len(exact):
        raise ValueError(f"cannot split {total} over amounts summing to {float(sum(exact, Fraction(0)))}")
    by_remainder = sorted(range(len(exact)), key=lambda i: (floors[i] - exact[i], order[i]))
    for i in by_remainder[:left_over]:
        floors[i] += 1
    return floors


def to_money(minor_units: int, minor_unit: int) -> Decimal:
    """Minor units as a Decimal amount with the six places of the MONEY column type."""
    return Decimal(minor_units).scaleb(-minor_unit).quantize(Decimal("0.000001"))


def ptu_hour_costs_minor(deployment: Deployment, day: date, minor_unit: int) -> list[int]:
    """The 24 hour costs of `day` in minor units, rounded cumulatively from the start of the month."""
    scale = 10**minor_unit
    hour = datetime(day.year, day.month, 1, tzinfo=UTC)
    cumulative = Fraction(0)
    while hour < utc_day_start(day):
        cumulative += deployment.hour_cost(hour)
        hour += timedelta(hours=1)
    costs = []
    for hour in day_hours(day):
        before = round(cumulative * scale)
        cumulative += deployment.hour_cost(hour)
        costs.append(round(cumulative * scale) - before)
    return costs


def ptu_hourly_costs(pricing: Pricing, backend_id: str, deployment_name: str, day: date) -> list[Decimal]:
    """What each of the 24 UTC hours of `day` costs on a PTU deployment, as allocated (for audits)."""
    deployment = pricing.deployment(backend_id, deployment_name)
    minor_unit = pricing.currency_minor_unit
    return [to_money(cost, minor_unit) for cost in ptu_hour_costs_minor(deployment, day, minor_unit)]
