"""The actual money a pipeline over the simulated tenant must charge each product once the Cost Management
export covers a day: the simulator's own export rows (`cost_export.day_rows`) shared out by the simulator's
own requests, in exact fractions (README "Actual cost", the allocation rules written out again).

It shares no code with the allocation (`core.billing.actual_allocation`) nor the meter rules
(`core.billing.meters`): each export row's meter is known by construction (`cost_export.token_meters`),
each product's usage from the generated requests (`money_oracle.day_usage`):
- a token meter of model m on a pay-as-you-go resource: by the product's prompt tokens (input and cached
  input meters) or completion tokens (output meter) of m there, over every token of m the resource metered
  (Azure Monitor's count: the pipeline's lines, unattributed and logged-not-billable included, sum to it);
  nothing metered: all of it `unattributed`;
- the PTU resource's provisioned (reservation used) hours: by the product's exact estimated PTU cost on that
  resource over the resource's (the idle policy's split); nothing priced: `unattributed`;
- the reservation's unused part: `platform-unallocated`, whole.
The published lines are rounded per line and per resource-day, so `tolerance` counts one minor unit per
share the product got and per resource, plus one.
"""

from collections import defaultdict
from decimal import Decimal
from fractions import Fraction

from chargeback_pipeline.sources.simulated.cost_export import PROVISIONED_METER, token_meters
from chargeback_pipeline.sources.simulated.deployments import DEPLOYMENT_LIST
from chargeback_pipeline.sources.simulated.money_oracle import (
    PLATFORM_UNALLOCATED,
    UNATTRIBUTED,
    DayUsage,
    ProductCost,
)

COST_COLUMNS = {"effective": "EffectiveCost", "billed": "BilledCost"}


def expected_actual_costs(
    export_rows: list[dict],
    backend_of_resource: dict[str, str],
    models_of_resource: dict[str, set[str]],
    metered: dict[tuple[str, str], list[int]],
    usage: DayUsage,
    minor_unit: int,
) -> dict[str, dict[str, ProductCost]]:
    """{"effective" | "billed": {product: ProductCost}} of the day's export rows (the simulator's), with
    `backend_of_resource` and `models_of_resource` keyed by lower-cased ARM id, `metered` the Azure Monitor
    tokens per (ARM id as the metrics name it, deployment) and `usage` the day's requests."""
    scale = 10**minor_unit
    result = {view: defaultdict(Fraction) for view in COST_COLUMNS}
    shares: defaultdict[str, int] = defaultdict(int)
    resources = set()
    metered_by_model: defaultdict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    for (resource, deployment), (prompt, completion) in metered.items():
        for spec in DEPLOYMENT_LIST:
            if spec.key == (backend_of_resource.get(resource.lower()), deployment):
                metered_by_model[(resource.lower(), spec.model_name)][0] += prompt
                metered_by_model[(resource.lower(), spec.model_name)][1] += completion
    for row in export_rows:
        resource = row["ResourceId"].lower()
        backend = backend_of_resource.get(resource)
        if backend is None and row.get("CommitmentDiscountStatus") != "Unused":
            continue  # another resource's row, or the reservation's purchase: no product's
        if backend is None:
            fractions = {PLATFORM_UNALLOCATED: Fraction(1)}
        elif row["SkuMeter"] == PROVISIONED_METER:
            costs = {product: cost for (product, b), cost in usage.ptu.items() if b == backend and cost}
            whole = sum(costs.values(), Fraction(0))
            fractions = {product: cost / whole for product, cost in costs.items()}
        else:
            meter = row["SkuMeter"]
            fractions = _token_fractions(meter, resource, backend, models_of_resource, metered_by_model, usage)
        fractions = fractions or {UNATTRIBUTED: Fraction(1)}  # nothing to share it by
        resources.add(resource)
        for product, fraction in fractions.items():
            shares[product] += 1
            for view, column in COST_COLUMNS.items():
                result[view][product] += Fraction(Decimal(str(row[column]))) * scale * fraction
    tolerance = {product: count + len(resources) + 1 for product, count in shares.items()}
    return {
        view: {product: ProductCost(amount, tolerance[product]) for product, amount in amounts.items()}
        for view, amounts in result.items()
    }


def _token_fractions(meter: str, resource: str, backend: str, models_of_resource, metered_by_model, usage) -> dict:
    """Each product's share of a token meter: its tokens of the meter's model on the backend over the
    resource's metered tokens of that model (prompt tokens for input meters, completion for output)."""
    kinds = {m: (kind, model) for model in models_of_resource[resource] for kind, m in token_meters(model).items()}
    if meter not in kinds:
        raise ValueError(f"{meter!r} is not a meter the simulator bills on {resource}")
    kind, model = kinds[meter]
    side = 1 if kind == "output" else 0
    whole = metered_by_model[(resource, model)][side]
    tokens: defaultdict[str, int] = defaultdict(int)
    for (product, code), counts in usage.paygo_tokens.items():
        spec = DEPLOYMENT_LIST[code]
        if spec.key[0] == backend and spec.model_name == model:
            tokens[product] += counts[side]
    return {product: Fraction(count, whole) for product, count in tokens.items() if count} if whole else {}
