"""Splitting each PTU deployment-hour's cost over its users and its unused capacity.

Every deployed hour of every PTU deployment of the pricing file is charged, used or not. Its cost is
split by weighted tokens (prompt tokens + output_token_weight * completion tokens) over the hour's
users (APIM lines and the `unattributed` line), following the unused-capacity policy:
  proportional  everything is split by weighted tokens; an hour nobody used goes to
                "platform-unallocated".
  unallocated   users pay cost * weighted / max(used, capacity); the rest is "platform-unallocated".
  fixed         users pay as under `unallocated`; the rest is split by the fixed shares (cost type
                `ptu_unused`), whether those products used the hour or not.
"""

from collections import defaultdict
from collections.abc import Callable, Mapping
from datetime import date, datetime
from decimal import Decimal
from fractions import Fraction

from chargeback_pipeline.core.billing.chargeback_lines import DayLines, LineKey, Usage, weighted_tokens
from chargeback_pipeline.core.billing.money import ptu_hour_costs_minor, split_by_largest_remainder
from chargeback_pipeline.core.billing.origin_charges import PTU_HOUR, OriginCharge, Share
from chargeback_pipeline.core.billing.pricing import BackendKind, Pricing, UnusedCapacityPolicy
from chargeback_pipeline.core.billing.schemas import PLATFORM_UNALLOCATED_PRODUCT, CostType
from chargeback_pipeline.core.periods import day_hours

HourWeights = Mapping[tuple[str, str, datetime], Mapping[LineKey, Fraction]]
HourTokens = Mapping[tuple[str, str, datetime], Mapping[LineKey, list[int]]]


def allocate_ptu(built: DayLines, usage: list[Usage]) -> None:
    """Add each PTU line's share of its deployment's hours to `built`."""
    pricing = built.pricing
    weights: defaultdict[tuple[str, str, datetime], defaultdict[LineKey, Fraction]] = defaultdict(
        lambda: defaultdict(Fraction)
    )
    # The lines' tokens per deployment-hour, for the record of each hour's split (origin_charges).
    tokens: defaultdict[tuple[str, str, datetime], defaultdict[LineKey, list[int]]] = defaultdict(
        lambda: defaultdict(lambda: [0, 0, 0])
    )
    for item in usage:
        weighted = weighted_tokens(item, built.weight_of(item.key))
        assert weighted is not None  # PTU models have a weight: checked when the pricing file loads
        weights[(item.key.backend_id, item.key.deployment_name, item.hour)][item.key] += Fraction(weighted)
        counted = tokens[(item.key.backend_id, item.key.deployment_name, item.hour)][item.key]
        counted[0] += item.calls
        counted[1] += item.prompt_tokens
        counted[2] += item.completion_tokens
    for backend_id, backend in pricing.backends.items():
        if backend.kind == BackendKind.ptu:
            for name in backend.deployments:
                _allocate_ptu_deployment(built, backend_id, name, weights, tokens)


def _allocate_ptu_deployment(
    built: DayLines, backend_id: str, name: str, weights: HourWeights, tokens: HourTokens
) -> None:
    """Charge every hour of the day of one PTU deployment, used or not."""
    pricing, day = built.pricing, built.day
    deployment = pricing.deployment(backend_id, name)
    hour_costs = ptu_hour_costs_minor(deployment, day, pricing.currency_minor_unit)
    if not any(hour_costs):
        return  # not deployed today: its users' lines carry tokens but no cost

    def unused_line(product: str) -> LineKey:
        return LineKey(product, None, deployment.model, name, backend_id, CostType.ptu_unused)

    capacity = _capacity_if_needed(pricing, backend_id, name, day)
    for hour, cost in zip(day_hours(day), hour_costs, strict=True):
        hour_weights = weights.get((backend_id, name, hour), {})
        shares = share_ptu_hour(cost, hour_weights, pricing, capacity, unused_line)
        for key, amount in shares.items():
            built.lines[key].ptu_minor += amount
        if shares:
            hour_tokens = tokens.get((backend_id, name, hour), {})
            recorded = []
            for key, amount in shares.items():
                calls, prompt, completion = hour_tokens.get(key, (0, 0, 0))
                if not (amount or calls or prompt or completion):
                    continue  # carries nothing: like an empty chargeback line, no allocated charge
                weight = hour_weights.get(key, Fraction(0))
                exact = Decimal(weight.numerator) / Decimal(weight.denominator)
                recorded.append(Share(key, amount, calls, prompt, completion, exact))
            built.origins.append(OriginCharge(PTU_HOUR, hour, backend_id, name, deployment.model, tuple(recorded)))


def _capacity_if_needed(pricing: Pricing, backend_id: str, deployment_name: str, day: date) -> int | None:
    if pricing.unused_capacity.policy == UnusedCapacityPolicy.proportional:
        return None
    return pricing.ptu_capacity_per_hour(backend_id, deployment_name, day)


def share_ptu_hour(
    cost: int,
    weights: Mapping[LineKey, Fraction],
    pricing: Pricing,
    capacity: int | None,
    unused_line: Callable[[str], LineKey],
) -> dict[LineKey, int]:
    """Split one deployment-hour's cost (minor units) over its users and the unused capacity."""
    if cost == 0:
        return {}
    policy = pricing.unused_capacity
    used = sum(weights.values(), Fraction(0))
    if policy.policy == UnusedCapacityPolicy.proportional:
        if used == 0:
            return {unused_line(PLATFORM_UNALLOCATED_PRODUCT): cost}  # nobody used the hour
        denominator = used
    else:
        assert capacity is not None  # checked when the pricing file loads
        denominator = max(used, Fraction(capacity))
    exact = {key: cost * weight / denominator for key, weight in weights.items()}
    unused = cost - sum(exact.values(), Fraction(0))
    if unused:
        if policy.policy == UnusedCapacityPolicy.unallocated:
            exact[unused_line(PLATFORM_UNALLOCATED_PRODUCT)] = unused
        else:  # fixed: the shares sum to exactly 1, checked when the pricing file loads
            for product, share in policy.fixed_shares.items():
                exact[unused_line(product)] = unused * Fraction(share)
    keys = list(exact)
    amounts = split_by_largest_remainder(cost, [exact[k] for k in keys], [k.order() for k in keys])
    return dict(zip(keys, amounts, strict=True))
