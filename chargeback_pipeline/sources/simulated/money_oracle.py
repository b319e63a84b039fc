"""The money a pipeline over the simulated logs must charge each product: from the simulator's own request
arrays and the pricing file, in exact fractions, each product's day rounded once (README: Money).

It shares no code with the money engine (`core.billing`) or the audit (`core.audit`): the pricing file is read
here with plain `yaml.safe_load`, and every rule is the README's, written out again:
- a PTU deployment's hour costs `ptu_count x hourly_rate_per_ptu`, or `ptu_count x monthly_reservation_per_ptu /
  (days in the month x 24)`, at the rate in force that day, while deployed;
- the hour is split by weighted tokens (prompt + output_token_weight x completion) over the products' billable
  requests of the hour (by gateway time) and the hour's unattributed tokens (the ground truth's); under
  `proportional` an hour nobody used goes to `platform-unallocated`; under `unallocated` and `fixed` users pay
  cost x weighted / max(used, capacity), capacity = ptu_count x ptu_input_tokens_per_minute x 60, and the rest
  goes to `platform-unallocated` or to the products by `fixed_shares`;
- pay-as-you-go tokens cost the model's prices per 1,000 on the day.
The published amounts are rounded per line; each differs from its exact share by less than one minor unit
(plus its share of the hour's own rounding), so `tolerance` counts one unit per PTU hour and pay-as-you-go
deployment a product was charged on, plus one.
"""

import calendar
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from fractions import Fraction
from pathlib import Path

import numpy as np
import yaml

from chargeback_pipeline.sources.simulated.deployments import DEPLOYMENT_INDEX, DEPLOYMENT_LIST
from chargeback_pipeline.sources.simulated.ground_truth import unattributed_tokens_by_deployment
from chargeback_pipeline.sources.simulated.hours import US_PER_HOUR, epoch_us

UNATTRIBUTED = "unattributed"
PLATFORM_UNALLOCATED = "platform-unallocated"


def _exact(value) -> Fraction:
    return Fraction(Decimal(str(value)))


def _day(value) -> date:
    return value.date() if isinstance(value, datetime) else value


def _moment(value) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
    return datetime.combine(value, time(0), tzinfo=UTC)


def _in_force(rates: list[dict], day: date) -> dict | None:
    ordered = sorted(rates, key=lambda rate: _day(rate["effective_from"]))
    found = [rate for rate in ordered if _day(rate["effective_from"]) <= day]
    return found[-1] if found else None


@dataclass(frozen=True)
class ProductCost:
    exact_minor_units: Fraction
    tolerance_minor_units: int

    @property
    def rounded(self) -> int:
        return round(self.exact_minor_units)  # once, half to even


class _Prices:
    def __init__(self, document: dict):
        self.document = document

    def model(self, name: str) -> dict:
        return (self.document.get("models") or {}).get(name) or {}

    def weight(self, model: str) -> Fraction:
        weight = self.model(model).get("output_token_weight")
        if weight is None:
            raise ValueError(f"the money oracle needs models.{model}.output_token_weight in the pricing file")
        return _exact(weight)

    def token_prices(self, model: str, day: date) -> tuple[Fraction, Fraction]:
        rate = _in_force(self.model(model).get("rates") or [], day)
        if rate is None:
            raise ValueError(f"no pay-as-you-go price of {model} on {day} in the pricing file")
        return _exact(rate["input_per_1k"]) / 1000, _exact(rate["output_per_1k"]) / 1000

    def hour(self, deployment: dict, hour: datetime) -> tuple[Fraction, Fraction | None]:
        """(the hour's exact cost, its capacity in weighted tokens or None) of a PTU deployment."""
        rates = deployment.get("rates") or []
        if not rates:
            return Fraction(0), None
        first = min(_day(r["effective_from"]) for r in rates)
        start = _moment(deployment.get("deployed_from")) or datetime.combine(first, time(0), tzinfo=UTC)
        until = _moment(deployment.get("deployed_until"))
        rate = _in_force(rates, hour.date())
        if rate is None or hour < start or (until is not None and hour >= until):
            return Fraction(0), None
        count = int(rate["ptu_count"])
        if rate.get("hourly_rate_per_ptu") is not None:
            cost = count * _exact(rate["hourly_rate_per_ptu"])
        else:
            cost = (
                count
                * _exact(rate["monthly_reservation_per_ptu"])
                / (calendar.monthrange(hour.year, hour.month)[1] * 24)
            )
        per_minute = self.model(deployment["model"]).get("ptu_input_tokens_per_minute")
        return cost, (None if per_minute is None else Fraction(count * int(per_minute) * 60))


@dataclass
class DayUsage:
    """Who used what on a day, by the simulator's own requests: each product's exact PTU cost per backend
    (the pricing file's hours split by the README's rules), and its pay-as-you-go tokens per deployment."""

    prices: "_Prices"
    ptu: dict  # (product, backend_id) -> exact cost (currency units)
    charged_on: dict  # product -> {(deployment code, hour or "day")}
    paygo_tokens: dict  # (product, deployment code) -> [prompt, completion]


def expected_product_costs(usage: DayUsage, day: date, minor_unit: int) -> dict[str, ProductCost]:
    """Per product (and `unattributed`, `platform-unallocated`): the day's exact cost in minor units, from
    its usage (`day_usage`)."""
    scale = 10**minor_unit
    exact: defaultdict[str, Fraction] = defaultdict(Fraction)
    for (product, _), cost in usage.ptu.items():
        exact[product] += cost * scale
    charged_on = usage.charged_on
    for (product, code), (prompt, completion) in usage.paygo_tokens.items():
        input_price, output_price = usage.prices.token_prices(DEPLOYMENT_LIST[code].model_name, day)
        exact[product] += (prompt * input_price + completion * output_price) * scale
    return {product: ProductCost(amount, len(charged_on[product]) + 1) for product, amount in exact.items()}


def day_usage(
    pricing_file: str | Path,
    day: date,
    requests_of,
    product_labels: list[str],
    subscription_product: np.ndarray,
    profile,
    missing_gateway_hours_us: set[int],
) -> DayUsage:
    """The day's usage by product (DayUsage), from the generated requests and the pricing file alone."""
    prices = _Prices(yaml.safe_load(Path(pricing_file).read_text(encoding="utf-8")) or {})
    unused = prices.document.get("unused_capacity") or {}
    policy = unused.get("policy", "proportional")
    fixed_shares = {product: _exact(share) for product, share in (unused.get("fixed_shares") or {}).items()}
    backends = prices.document.get("backends") or {}
    ptu: defaultdict[tuple[str, str], Fraction] = defaultdict(Fraction)
    charged_on: defaultdict[str, set] = defaultdict(set)
    day_start = datetime.combine(day, time(0), tzinfo=UTC)
    paygo_tokens: defaultdict[tuple[str, int], list[int]] = defaultdict(lambda: [0, 0])
    for offset in range(24):
        hour = day_start + timedelta(hours=offset)
        hour_us = epoch_us(hour)
        # Who used each simulated deployment this hour: billable requests by product, unattributed tokens.
        used: defaultdict[int, defaultdict[str, list[int]]] = defaultdict(lambda: defaultdict(lambda: [0, 0]))
        requests = requests_of(hour_us)
        billable = requests.has_gateway_row & requests.is_success & requests.has_llm_record
        if hour_us in missing_gateway_hours_us:
            billable = np.zeros_like(billable)
        products = subscription_product[requests.subscription]
        for index in np.flatnonzero(billable):
            tokens = used[int(requests.deployment[index])][product_labels[int(products[index])]]
            tokens[0] += int(requests.prompt_tokens[index])
            tokens[1] += int(requests.completion_tokens[index])
        unattributed = unattributed_tokens_by_deployment(
            profile, range(hour_us, hour_us + US_PER_HOUR, US_PER_HOUR), requests_of, missing_gateway_hours_us
        ).to_pylist()
        for row in unattributed:
            code = DEPLOYMENT_INDEX[(row["backend_id"], row["deployment_name"])]
            if row["prompt_tokens"] or row["completion_tokens"]:
                used[code][UNATTRIBUTED] = [row["prompt_tokens"], row["completion_tokens"]]
        for code, (backend_id, name) in enumerate(d.key for d in DEPLOYMENT_LIST):
            backend = backends.get(backend_id) or {}
            if backend.get("kind") == "paygo":
                for product, (prompt, completion) in used[code].items():
                    paygo_tokens[(product, code)][0] += prompt
                    paygo_tokens[(product, code)][1] += completion
                continue
            settings = (backend.get("deployments") or {}).get(name)
            if backend.get("kind") != "ptu" or settings is None:
                continue
            cost, capacity = prices.hour(settings, hour)
            if cost == 0:
                continue
            weight = prices.weight(settings["model"])
            weights = {product: prompt + weight * completion for product, (prompt, completion) in used[code].items()}
            weights = {product: w for product, w in weights.items() if w}
            total = sum(weights.values(), Fraction(0))
            if policy == "proportional":
                if total == 0:
                    weights, total = {PLATFORM_UNALLOCATED: Fraction(1)}, Fraction(1)
                denominator = total
            else:
                if capacity is None:
                    raise ValueError(f"policy {policy} needs models.{settings['model']}.ptu_input_tokens_per_minute")
                denominator = max(total, capacity)
            for product, w in weights.items():
                ptu[(product, backend_id)] += cost * w / denominator
                charged_on[product].add((code, offset))
            rest = cost - cost * total / denominator if policy != "proportional" else 0
            if rest:
                shares = {PLATFORM_UNALLOCATED: Fraction(1)} if policy == "unallocated" else fixed_shares
                for product, share in shares.items():
                    ptu[(product, backend_id)] += rest * share
                    charged_on[product].add((code, offset))
    for product, code in paygo_tokens:
        charged_on[product].add((code, "day"))
    return DayUsage(prices, dict(ptu), charged_on, dict(paygo_tokens))


def compare_with_published(
    expected: dict[str, ProductCost], published: dict[str, Decimal], minor_unit: int
) -> list[str]:
    """Every product whose published day differs from the oracle by more than its tolerance (or that only
    one side has), as text; `logged-not-billable` is not modelled here (the audit counts it from raw)."""
    scale = 10**minor_unit
    problems = []
    for product in sorted(set(expected) | set(published)):
        if product == "logged-not-billable":
            continue
        oracle = expected.get(product)
        got = Fraction(published.get(product, Decimal(0))) * scale
        if oracle is None:
            if got:
                problems.append(f"{product}: published {got / scale}, the simulator charges nothing")
            continue
        if abs(got - oracle.exact_minor_units) > oracle.tolerance_minor_units:
            problems.append(
                f"{product}: published {float(got / scale):.2f}, oracle {oracle.rounded / scale:.2f} "
                f"(tolerance {oracle.tolerance_minor_units / scale:.2f})"
            )
    return problems
