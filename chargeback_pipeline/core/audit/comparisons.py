"""The audit's comparisons: each value the pipeline produced beside the audit's own expectation, one row
per resource-deployment (or hour, or product), with the difference. Pure: the checks judge the rows.

Values judged come from the chargeback's lines (what is published) and the attribution's billed tokens;
expectations from `raw_evidence` (landed raw rows, audit SQL) and `price_list` (the pricing file, read and
priced by the audit alone). Money in whole minor units (ints) or exact fractions of them.
"""

from collections import Counter, defaultdict
from datetime import date
from fractions import Fraction

from chargeback_pipeline.core.audit.price_list import PriceList
from chargeback_pipeline.core.audit.raw_evidence import DayEvidence

# The lines' names of the reconciling products (README: Money), as published: the audit reads them as text.
UNATTRIBUTED = "unattributed"
LOGGED_NOT_BILLABLE = "logged-not-billable"
PLATFORM_UNALLOCATED = "platform-unallocated"
RECONCILING = frozenset({UNATTRIBUTED, LOGGED_NOT_BILLABLE, PLATFORM_UNALLOCATED})


def _minor(amount, minor_unit: int) -> Fraction:
    return Fraction(amount) * 10**minor_unit


def billed_against_successful(evidence: DayEvidence, lines: list[dict]) -> list[dict]:
    """Every resource-deployment-hour the attribution billed (and -day, from the published lines): its
    billed prompt and completion tokens beside the tokens of the successful requests logged there, `over`
    when either exceeds them."""
    compared = []
    for hour, backend, deployment in evidence.keys_of(evidence.billed_by_hour):
        key = (hour, backend, deployment)
        billed = evidence.tokens(evidence.billed_by_hour, key)
        bound = evidence.tokens(evidence.successful_by_hour, key)
        compared.append(_row(f"{hour:%Y-%m-%d %H}:00", backend, deployment, billed, bound))
    charged: Counter = Counter()
    for line in lines:
        if line["product_id"] not in RECONCILING:
            charged[((line["backend_id"], line["deployment_name"]), "prompt")] += line["prompt_tokens"]
            charged[((line["backend_id"], line["deployment_name"]), "completion")] += line["completion_tokens"]
    day_bound: Counter = Counter()
    for ((_, backend, deployment), part), tokens in evidence.successful_by_hour.items():
        day_bound[((backend, deployment), part)] += tokens
    for key in sorted({key for key, _ in charged}):
        billed = (charged[(key, "prompt")], charged[(key, "completion")])
        bound = (day_bound[(key, "prompt")], day_bound[(key, "completion")])
        compared.append(_row(f"{evidence.day} (chargeback lines)", *key, billed, bound))
    return compared


def _row(period: str, backend: str, deployment: str, billed: tuple, bound: tuple) -> dict:
    return {
        "period": period,
        "backend_id": backend,
        "deployment_name": deployment,
        "billed_prompt_tokens": billed[0],
        "successful_prompt_tokens": bound[0],
        "billed_completion_tokens": billed[1],
        "successful_completion_tokens": bound[1],
        "over": billed[0] > bound[0] or billed[1] > bound[1],
    }


def logged_not_billable(evidence: DayEvidence, lines: list[dict], prices: PriceList) -> tuple[list[dict], int]:
    """Per pay-as-you-go resource-deployment of the day: the `logged-not-billable` line's tokens against the
    audit's own count from raw: tokens of failed requests + records with no gateway row (placed on the
    deployment's only backend in the pricing file; on a name several backends serve they stay uncharged)
    + records logged today of requests billed on another day - tokens billed today but logged another day
    (a request across midnight), clipped at zero. Returns (rows, records without a gateway row left
    unplaced)."""

    def placed(key):
        backend, deployment = key
        if backend != "unknown":
            return key
        serving = prices.backends_serving(deployment)
        return (serving[0], deployment) if len(serving) == 1 else None

    expected: defaultdict = defaultdict(int)
    for counter, sign in (
        (evidence.failed, 1),
        (evidence.billed_another_day, 1),
        (evidence.logged_another_day, -1),
    ):
        for (key, part), tokens in counter.items():
            expected[(key, part)] += sign * tokens
    unplaced = 0
    for (key, part), tokens in evidence.no_gateway_row.items():
        where = placed(key)
        if where is None:
            unplaced += tokens
        else:
            expected[(where, part)] += tokens
    charged: Counter = Counter()
    for line in lines:
        if line["product_id"] == LOGGED_NOT_BILLABLE:
            charged[((line["backend_id"], line["deployment_name"]), "prompt")] += line["prompt_tokens"]
            charged[((line["backend_id"], line["deployment_name"]), "completion")] += line["completion_tokens"]
    rows = []
    judged = {key for key, _ in charged} | {key for key, _ in expected}
    for key in sorted(k for k in judged if prices.kind(k[0]) == "paygo"):
        raw = evidence
        rows.append(
            {
                "backend_id": key[0],
                "deployment_name": key[1],
                "line_prompt_tokens": charged[(key, "prompt")],
                "expected_prompt_tokens": max(expected[(key, "prompt")], 0),
                "line_completion_tokens": charged[(key, "completion")],
                "expected_completion_tokens": max(expected[(key, "completion")], 0),
                "failed_tokens": sum(raw.tokens(raw.failed, key)),
                "no_gateway_row_tokens": sum(raw.tokens(raw.no_gateway_row, ("unknown", key[1])))
                if placed(("unknown", key[1])) == key
                else 0,
                "across_midnight_tokens": sum(raw.tokens(raw.billed_another_day, key))
                - sum(raw.tokens(raw.logged_another_day, key)),
            }
        )
    return rows, unplaced


def unattributed_shares(evidence: DayEvidence, lines: list[dict], prices: PriceList) -> list[dict]:
    """Per resource-deployment of the day: tokens charged to `unattributed` against the tokens the resource
    metered (raw Azure Monitor rows, the resource's backend by the pricing file's resource_id, else its
    account name)."""
    metered: Counter = Counter()
    for ((resource, deployment), part), tokens in evidence.metered.items():
        metered[((prices.backend_of_resource(resource) or "unknown", deployment), part)] += tokens
    charged: Counter = Counter()
    for line in lines:
        if line["product_id"] == UNATTRIBUTED:
            charged[(line["backend_id"], line["deployment_name"])] += line["prompt_tokens"] + line["completion_tokens"]
    rows = []
    for key in sorted({key for key, _ in metered} | set(charged)):
        total = metered[(key, "prompt")] + metered[(key, "completion")]
        rows.append(
            {
                "backend_id": key[0],
                "deployment_name": key[1],
                "metered_tokens": total,
                "unattributed_tokens": charged[key],
                "unattributed_percent": round(100 * charged[key] / total, 3) if total else 0.0,
            }
        )
    return rows


def ptu_costs(day: date, lines: list[dict], prices: PriceList, minor_unit: int) -> list[dict]:
    """Per PTU resource-deployment of the pricing file: the day's lines (every product, reconciling ones
    included) against deployed hours x that month's hourly rate, rounded as Azure bills a month."""
    charged: Counter = Counter()
    for line in lines:
        charged[(line["backend_id"], line["deployment_name"])] += _minor(line["total_cost"], minor_unit)
    rows = []
    for backend_id, backend in sorted(prices.backends.items()):
        if backend.get("kind") != "ptu":
            continue
        for name in sorted(backend.get("deployments") or {}):
            hours, billed, exact = prices.ptu_day(backend_id, name, day, minor_unit)
            got = charged[(backend_id, name)]
            rows.append(
                {
                    "backend_id": backend_id,
                    "deployment_name": name,
                    "deployed_hours": hours,
                    "exact_minor_units": float(exact),
                    "expected_minor_units": billed,
                    "lines_minor_units": float(got),
                    "difference_minor_units": float(got - billed),
                }
            )
    return rows


def price_list_deviations(day: date, lines: list[dict], prices: PriceList, minor_unit: int) -> tuple[list[dict], int]:
    """What the pricing file allows, line by line and product by product:
    - a line's weighted tokens are prompt + the file's output_token_weight x completion tokens;
    - per product, its pay-as-you-go cost lies within one minor unit per line of its tokens at the model's
      prices (each line is its exact share, rounded once per deployment-day and split by largest remainder);
    - per pay-as-you-go resource-deployment, the lines sum to the day's exact cost rounded once;
    - per product, its PTU cost never exceeds the day's cost of the PTU deployments it used.
    Returns (deviations, products judged)."""
    deviations = []
    per_product: defaultdict = defaultdict(lambda: [Fraction(0), Fraction(0), 0])  # charged, exact, lines
    per_deployment: defaultdict = defaultdict(lambda: [Fraction(0), Fraction(0)])
    ptu_used: defaultdict = defaultdict(set)
    ptu_charged: Counter = Counter()
    for line in lines:
        deployment = prices.deployment(line["backend_id"], line["deployment_name"]) or {}
        model = deployment.get("model") or line["model_name"]
        weight = prices.output_token_weight(model)
        if weight is not None and line["weighted_tokens"] is not None:
            expected = line["prompt_tokens"] + weight * line["completion_tokens"]
            if Fraction(line["weighted_tokens"]) != expected:
                deviations.append(
                    {
                        "what": "weighted_tokens",
                        "product_id": line["product_id"],
                        "deployment_name": line["deployment_name"],
                        "expected": float(expected),
                        "published": float(line["weighted_tokens"]),
                    }
                )
        if prices.kind(line["backend_id"]) == "paygo":
            token_prices = prices.token_prices(model, day)
            if token_prices is None:
                continue
            exact = (
                line["prompt_tokens"] * token_prices[0] + line["completion_tokens"] * token_prices[1]
            ) * 10**minor_unit
            got = _minor(line["paygo_cost"], minor_unit)
            product = per_product[line["product_id"]]
            product[0] += got
            product[1] += exact
            product[2] += 1
            deployment_day = per_deployment[(line["backend_id"], line["deployment_name"])]
            deployment_day[0] += got
            deployment_day[1] += exact
        elif prices.kind(line["backend_id"]) == "ptu":
            ptu_used[line["product_id"]].add((line["backend_id"], line["deployment_name"]))
            ptu_charged[line["product_id"]] += _minor(line["ptu_cost"], minor_unit)
    for product, (got, exact, count) in sorted(per_product.items()):
        if abs(got - exact) > count:
            deviations.append(
                {
                    "what": "paygo cost of product",
                    "product_id": product,
                    "deployment_name": "",
                    "expected": float(exact),
                    "published": float(got),
                }
            )
    for (backend_id, name), (got, exact) in sorted(per_deployment.items()):
        if got != round(exact):
            deviations.append(
                {
                    "what": "paygo day not rounded once",
                    "product_id": backend_id,
                    "deployment_name": name,
                    "expected": float(round(exact)),
                    "published": float(got),
                }
            )
    day_costs = {key: prices.ptu_day(*key, day, minor_unit)[1] for used in ptu_used.values() for key in used}
    for product, used in sorted(ptu_used.items()):
        ceiling = sum(day_costs[key] for key in used)
        if ptu_charged[product] > ceiling:
            deviations.append(
                {
                    "what": "ptu cost above the deployments' day",
                    "product_id": product,
                    "deployment_name": "",
                    "expected": float(ceiling),
                    "published": float(ptu_charged[product]),
                }
            )
    return deviations, len(per_product) + len(ptu_used)
