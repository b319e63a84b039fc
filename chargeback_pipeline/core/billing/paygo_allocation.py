"""Pricing pay-as-you-go (spillover) tokens directly, with the token prices in force on the day.

Each line costs its tokens times the model's prices per 1,000 tokens (cached prompt tokens at the cached
price when pricing.cached_tokens is `deduct`). A deployment-day's exact total is rounded once (half to
even) and split over its lines by largest remainder, so the lines sum exactly to the rounded total.
"""

from collections import defaultdict
from fractions import Fraction

from chargeback_pipeline.core.billing.chargeback_lines import DayLines, LineKey, Usage
from chargeback_pipeline.core.billing.money import split_by_largest_remainder
from chargeback_pipeline.core.billing.origin_charges import PAYGO_DAY, OriginCharge, Share, day_start


def allocate_paygo(built: DayLines, usage: list[Usage]) -> None:
    """Add each pay-as-you-go line's cost to `built`."""
    pricing, day = built.pricing, built.day
    scale = 10**pricing.currency_minor_unit
    by_deployment: defaultdict[tuple[str, str], defaultdict[LineKey, Fraction]] = defaultdict(
        lambda: defaultdict(Fraction)
    )
    for item in usage:
        model = pricing.deployment(item.key.backend_id, item.key.deployment_name).model
        prices = pricing.token_prices_on(model, day)
        uncached = item.prompt_tokens - item.cached_prompt_tokens
        per_1k = (
            uncached * Fraction(prices.input_per_1k)
            + item.cached_prompt_tokens * Fraction(prices.cached_input_price)
            + item.completion_tokens * Fraction(prices.output_per_1k)
        )
        by_deployment[(item.key.backend_id, item.key.deployment_name)][item.key] += per_1k * scale / 1000
    for (backend_id, name), exact in by_deployment.items():
        total = round(sum(exact.values(), Fraction(0)))  # once per deployment-day, half to even
        keys = list(exact)
        amounts = split_by_largest_remainder(total, [exact[k] for k in keys], [k.order() for k in keys])
        for key, amount in zip(keys, amounts, strict=True):
            built.lines[key].paygo_minor += amount
        # The deployment-day is the origin charge; each line's tokens are its tokens of the day.
        shares = tuple(
            share
            for share in (
                Share(key, amount, *_day_tokens(built, key)) for key, amount in zip(keys, amounts, strict=True)
            )
            # carries nothing: like an empty chargeback line, no allocated charge
            if share.minor or share.calls or share.prompt_tokens or share.completion_tokens
        )
        model = pricing.deployment(backend_id, name).model
        built.origins.append(OriginCharge(PAYGO_DAY, day_start(day), backend_id, name, model, shares))


def _day_tokens(built: DayLines, key: LineKey) -> tuple:
    # A pay-as-you-go line is one deployment's for the whole day: its tokens are the origin's share.
    line = built.lines[key]
    return line.calls, line.prompt_tokens, line.completion_tokens, line.weighted_tokens
