"""The simulated tenant's terms of a day, read from the pricing file: what it deploys and lists at, for the
simulator's Cost Management export (`sources.simulated.cost_export`, which may not read the pricing
file itself: sources import no core). Used by `chargeback demo-export` and the tests."""

from datetime import date

from chargeback_pipeline.core.billing.pricing import BackendKind, Pricing
from chargeback_pipeline.core.periods import day_hours
from chargeback_pipeline.sources.simulated.cost_export import DayTerms, TokenPrices


def simulated_terms(pricing: Pricing, day: date) -> DayTerms:
    paygo, ptu_hours, prices = {}, {}, {}
    for backend in pricing.backends.values():
        assert backend.resource_id, "the simulated export needs every backend's resource_id"
        if backend.kind == BackendKind.paygo:
            paygo[backend.resource_id] = {name: d.model for name, d in backend.deployments.items()}
            for deployment in backend.deployments.values():
                rate = pricing.token_prices_on(deployment.model, day)
                prices[deployment.model] = TokenPrices(rate.input_per_1k, rate.cached_input_price, rate.output_per_1k)
        else:
            ptu_hours[backend.resource_id] = sum(
                deployment.rate_on(day).ptu_count
                for deployment in backend.deployments.values()
                for hour in day_hours(day)
                if deployment.is_deployed(hour)
            )
    return DayTerms(paygo=paygo, ptu_hours=ptu_hours, prices=prices)
