"""Allocating what Azure billed (the Cost Management export) to the day's chargeback lines.

The origin charges are the export's rows of the Azure OpenAI resources the pricing file names (ARM ids
compared case-insensitively), grouped per resource, day and meter (and, within a meter, per price and
commitment status, so each origin keeps the export's identifiers). Each origin is split in BOTH of
FOCUS's views, `EffectiveCost` (amortized: a reservation's share of its cost) and `BilledCost` (what is
invoiced), over the day's chargeback lines (the estimate's lines: their tokens and, for PTU, their
weighted-usage split under the idle policy):

- input-token meters by the lines' prompt tokens, output-token meters by completion tokens, both over
  the lines of deployments of the meter's model on that resource (`unattributed` and
  `logged-not-billable` lines included: they carry tokens Azure metered);
- cached-input meters by prompt tokens as well: the gateway logs do not say which prompts hit the cache,
  so the cached-input charge is shared like the prompts it was served for (documented rule);
- provisioned (PTU-hour) meters by each line's estimated PTU cost on that resource: that estimate is
  the split of every deployment-hour by weighted tokens under the pricing file's unused-capacity policy,
  weighted by each deployment's PTU-hours, so the actual charge follows the same policy;
- an origin with nothing to split it by (no tokens of its model, no PTU hour priced that day) goes whole
  to an `unattributed` line with the reason.

Money: the export's amounts carry many decimals. Per resource and day its origins are rounded
cumulatively to the currency's minor unit (origin = round(C(i+1)) - round(C(i)), half to even, C the
running exact sum), so the resource-day total is the export's rounded once; each origin is then split
by largest remainder (`money.split_by_largest_remainder`): every origin's shares sum exactly to it.
"""

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from decimal import ROUND_HALF_EVEN, Decimal
from fractions import Fraction

import pyarrow as pa

from chargeback_pipeline.core.billing.cost_basis import LINE_KEY
from chargeback_pipeline.core.billing.meters import (
    MeterKind,
    UnmappedMeterError,
    derived_kind,
    derived_model,
    mapping_snippet,
)
from chargeback_pipeline.core.billing.money import split_by_largest_remainder, to_money
from chargeback_pipeline.core.billing.pricing import Pricing
from chargeback_pipeline.core.billing.schemas import (
    MONEY,
    PLATFORM_UNALLOCATED_PRODUCT,
    QUANTITY,
    UNATTRIBUTED_PRODUCT,
    CostType,
)
from chargeback_pipeline.storage.schemas import CALLER_ID, UTC_TIMESTAMP

UNKNOWN = "unknown"  # model / deployment of an unattributed actual line
UNUSED_COMMITMENT_BASIS = "unused_commitment"  # allocation_basis of a reservation's unused part
# Origin columns copied from the export (EXPORT_CHARGE_SCHEMA names): the origin charge's identity.
ORIGIN_COLUMNS = (
    "resource_id",
    "meter_id",
    "meter_name",
    "sku_price_id",
    "charge_category",
    "pricing_category",
    "commitment_discount_id",
    "commitment_discount_status",
    "commitment_discount_type",
)

# One row per (origin charge, chargeback line) share.
ACTUAL_ALLOCATION_SCHEMA = pa.schema(
    [
        ("usage_date", pa.date32()),
        ("origin_charge_id", pa.string()),
        ("charge_period_start", UTC_TIMESTAMP),
        ("charge_period_end", UTC_TIMESTAMP),
        ("backend_id", pa.string()),  # null on a commitment's unused part (the reservation is no backend's)
        *((name, pa.string()) for name in ORIGIN_COLUMNS),
        ("meter_kind", pa.string()),  # a MeterKind value
        ("meter_model", pa.string()),  # the model a token meter bills; null for provisioned
        ("consumed_quantity", QUANTITY),  # the origin's, as exported (summed over its rows)
        ("consumed_unit", pa.string()),
        ("pricing_quantity", QUANTITY),
        ("pricing_unit", pa.string()),
        ("billing_account_id", pa.string()),
        ("sub_account_id", pa.string()),
        ("invoice_id", pa.string()),
        ("invoice_issuer_name", pa.string()),
        ("export_run_id", pa.string()),
        ("origin_effective_cost", MONEY),
        ("origin_billed_cost", MONEY),
        ("product_id", pa.string()),
        ("subscription_id", pa.string()),
        ("model_name", pa.string()),
        ("deployment_name", pa.string()),
        ("cost_type", pa.string()),  # the chargeback line's CostType
        (CALLER_ID, pa.string()),  # the line's caller, where the day was attributed with callers
        # prompt_tokens | completion_tokens | estimated_ptu_cost | unused_commitment | none
        ("allocation_basis", pa.string()),
        ("allocation_quantity", QUANTITY),  # the line's amount of the basis
        ("effective_cost", MONEY),
        ("billed_cost", MONEY),
        ("list_cost", MONEY),  # the export's ListCost and ContractedCost, split the same way (for FOCUS)
        ("contracted_cost", MONEY),
        ("currency", pa.string()),
        ("unattributed_reason", pa.string()),  # only on an origin no line could take
    ]
)

_BASIS = {
    MeterKind.input: "prompt_tokens",
    MeterKind.cached_input: "prompt_tokens",
    MeterKind.output: "completion_tokens",
    MeterKind.provisioned: "estimated_ptu_cost",
}
OTHER_COSTS = ("list_cost", "contracted_cost")  # FOCUS's other costs, split like EffectiveCost


class ActualCostError(ValueError):
    """The export and the pricing file disagree in a way no allocation can mend; the message says how."""


@dataclass
class _Origin:
    key: tuple
    rows: list[dict]

    def total(self, column: str) -> Decimal:
        return sum((row[column] or Decimal(0) for row in self.rows), Decimal(0))


def resources_by_id(pricing: Pricing) -> dict[str, str]:
    """Lower-cased ARM id -> backend id, for every backend of the pricing file (each needs its id)."""
    missing = [backend_id for backend_id, backend in pricing.backends.items() if not backend.resource_id]
    if missing:
        raise ActualCostError(
            "the cost export is matched to backends by their Azure OpenAI resource: set "
            + ", ".join(f"pricing.backends.{backend_id}.resource_id" for backend_id in sorted(missing))
        )
    named: defaultdict[str, list[str]] = defaultdict(list)
    for backend_id, backend in sorted(pricing.backends.items()):
        assert backend.resource_id is not None
        named[backend.resource_id.lower()].append(backend_id)
    shared = {resource: backends for resource, backends in named.items() if len(backends) > 1}
    if shared:
        # The export bills per resource: one resource's charges cannot be told apart by backend, and giving
        # them all to one backend would charge its products for the others' tokens.
        raise ActualCostError(
            "the cost export bills per Azure OpenAI resource, and "
            + "; ".join(f"backends {', '.join(backends)} name the same resource {resource}" for resource, backends in
                        sorted(shared.items()))
            + ": allocating one resource's charges over several backends is not supported; give each backend its "
            "own resource, or leave the cost export off (estimates from the pricing file)"
        )  # fmt: skip
    return {resource: backends[0] for resource, backends in named.items()}


def check_export_matches_pricing(
    charges: pa.Table, pricing: Pricing, what: str, in_use: Iterable[str] | None = None
) -> None:
    """Fail on a currency other than the pricing file's, or a backend in use (`in_use`: backend ids; None:
    every backend of the pricing file) whose resource the export never mentions: its scope is too narrow or
    the resource_id is wrong. A backend nothing used (a spillover deployment that never spilled) has no row
    to find: it is no error."""
    currencies = sorted({c for c in charges["billing_currency"].to_pylist() if c} - {pricing.currency})
    if currencies:
        raise ActualCostError(
            f"{what} bills in {', '.join(currencies)} but pricing.currency is {pricing.currency}: the chargeback "
            "allocates the export's own amounts, so set pricing.currency to the billing currency"
        )
    mentioned = {resource_id.lower() for resource_id in charges["resource_id"].to_pylist() if resource_id}
    checked = set(pricing.backends) if in_use is None else set(in_use)
    by_id = resources_by_id(pricing)
    silent = sorted(backend for resource, backend in by_id.items() if resource not in mentioned and backend in checked)
    if silent:
        raise ActualCostError(
            f"{what} has no row for "
            + ", ".join(f"{backend} ({pricing.backends[backend].resource_id})" for backend in silent)
            + ": the export's scope must include every resource of the pricing file (or the resource_id is wrong)"
        )


def allocate_actual_day(charges: pa.Table, estimate_lines: pa.Table, pricing: Pricing, day: date) -> pa.Table:
    """The day's export charges split over its chargeback lines, in ACTUAL_ALLOCATION_SCHEMA.

    charges: EXPORT_CHARGE_SCHEMA rows (others days' rows are ignored); estimate_lines: the day's
    DAILY_CHARGEBACK_SCHEMA lines. UnmappedMeterError for a meter neither named nor mapped."""
    backends = resources_by_id(pricing)
    lines = [line for line in estimate_lines.to_pylist() if line["usage_date"] == day]
    origins: defaultdict[tuple[str, str], dict[tuple, _Origin]] = defaultdict(dict)
    for row in charges.to_pylist():
        if row["charge_period_start"].date() != day:
            continue
        backend_id = backends.get((row["resource_id"] or "").lower())
        if backend_id is None and not _unused_commitment(row):
            continue
        key = tuple(row[column] if column != "resource_id" else row[column].lower() for column in ORIGIN_COLUMNS)
        origins[(backend_id or "", key[0])].setdefault(key, _Origin(key, [])).rows.append(row)
    shares = []
    for (backend_id, _), by_key in sorted(origins.items()):
        ordered = [by_key[key] for key in sorted(by_key, key=lambda k: tuple(v or "" for v in k))]
        effective = _cumulative_minor([o.total("effective_cost") for o in ordered], pricing.currency_minor_unit)
        billed = _cumulative_minor([o.total("billed_cost") for o in ordered], pricing.currency_minor_unit)
        others = {
            view: _cumulative_minor([o.total(view) for o in ordered], pricing.currency_minor_unit)
            for view in OTHER_COSTS
        }
        for index, origin in enumerate(ordered):
            extra = {view: minors[index] for view, minors in others.items()}
            shares += _split_origin(origin, backend_id, effective[index], billed[index], lines, pricing, day, extra)
    return pa.Table.from_pylist(shares, schema=ACTUAL_ALLOCATION_SCHEMA)


def _cumulative_minor(amounts: list[Decimal], minor_unit: int) -> list[int]:
    scale, running, before, minors = Decimal(10) ** minor_unit, Decimal(0), 0, []
    for amount in amounts:
        running += amount
        after = int((running * scale).to_integral_value(rounding=ROUND_HALF_EVEN))
        minors.append(after - before)
        before = after
    return minors


def meter_of(meter_name: str, backend_id: str, pricing: Pricing) -> tuple[MeterKind, str | None]:
    """The meter's kind and model (None for provisioned): the pricing file's mapping, else its name."""
    mapped = pricing.meters.get(meter_name)
    models = {deployment.model for deployment in pricing.backends[backend_id].deployments.values()}
    kind = mapped.kind if mapped else derived_kind(meter_name)
    model = mapped.model if mapped and mapped.model else None
    if kind is not None and kind != MeterKind.provisioned and model is None:
        model = derived_model(meter_name, models)
    if kind is None or (kind != MeterKind.provisioned and model is None):
        raise UnmappedMeterError(
            f"cost export meter {meter_name!r} on backend {backend_id} (models {', '.join(sorted(models))}): its "
            "name does not say unambiguously what it bills; map it in the pricing file:\n"
            + mapping_snippet(meter_name, kind, model)
        )
    return kind, None if kind == MeterKind.provisioned else model


def _pool(kind: MeterKind, model: str | None, backend_id: str, lines: list[dict], pricing: Pricing) -> list:
    """(line, weight) of the lines the origin is split over."""
    pool = []
    for line in lines:
        if line["backend_id"] != backend_id:
            continue
        if kind == MeterKind.provisioned:
            if line["cost_type"] in (CostType.ptu, CostType.ptu_unused):
                pool.append((line, Fraction(line["ptu_cost"])))
        elif pricing.deployment(backend_id, line["deployment_name"]).model == model:
            pool.append((line, Fraction(line[_BASIS[kind]])))
    return [(line, weight) for line, weight in pool if weight > 0]


def _split_origin(
    origin: _Origin,
    backend_id: str,
    effective_minor: int,
    billed_minor: int,
    lines: list[dict],
    pricing: Pricing,
    day: date,
    extra: dict[str, int],
) -> list[dict]:
    """The origin's shares; `extra` its list and contracted cost in minor units, split like the others."""
    first = origin.rows[0]
    meter_name = first["meter_name"] or ""
    unused = not backend_id  # an unused commitment: the reservation's own row, no backend's
    kind, model = (MeterKind.provisioned, None) if unused else meter_of(meter_name, backend_id, pricing)
    pool = [] if unused else _pool(kind, model, backend_id, lines, pricing)
    minor_unit = pricing.currency_minor_unit
    common = {
        "usage_date": day,
        "origin_charge_id": _origin_id(origin, day),
        "charge_period_start": min(row["charge_period_start"] for row in origin.rows),
        "charge_period_end": max(row["charge_period_end"] or row["charge_period_start"] for row in origin.rows),
        "backend_id": backend_id or None,
        **{column: first[column] for column in ORIGIN_COLUMNS},
        "meter_kind": kind.value,
        "meter_model": model,
        "consumed_quantity": origin.total("consumed_quantity"),
        "consumed_unit": first["consumed_unit"],
        "pricing_quantity": origin.total("pricing_quantity"),
        "pricing_unit": first["pricing_unit"],
        "billing_account_id": first["billing_account_id"],
        "sub_account_id": first["sub_account_id"],
        "invoice_id": first["invoice_id"],
        "invoice_issuer_name": first["invoice_issuer_name"],
        "export_run_id": first["export_run_id"],
        "origin_effective_cost": to_money(effective_minor, minor_unit),
        "origin_billed_cost": to_money(billed_minor, minor_unit),
        "currency": pricing.currency,
        **{view: to_money(minor, minor_unit) for view, minor in extra.items()},  # whole, unless split below
    }
    if unused:
        return [{**common, **_unused_commitment_share(first, effective_minor, billed_minor, minor_unit)}]
    if not pool:
        reason = (
            f"no PTU hour of {backend_id} is priced on {day} in the pricing file"
            if kind == MeterKind.provisioned
            else f"no {_BASIS[kind].replace('_', ' ')} of model {model} on {backend_id} on {day}"
        )
        cost_type = CostType.ptu if kind == MeterKind.provisioned else CostType.paygo
        unattributed = {
            "product_id": UNATTRIBUTED_PRODUCT,
            "subscription_id": None,
            "model_name": model or UNKNOWN,
            "deployment_name": UNKNOWN,
            "cost_type": cost_type.value,
            CALLER_ID: None,
            "allocation_basis": "none",
            "allocation_quantity": Decimal(0),
            "effective_cost": to_money(effective_minor, minor_unit),
            "billed_cost": to_money(billed_minor, minor_unit),
            "unattributed_reason": reason,
        }
        return [{**common, **unattributed}]
    pool.sort(key=lambda item: _line_order(item[0]))
    weights = [weight for _, weight in pool]
    order = [_line_order(line) for line, _ in pool]
    effective = _split(effective_minor, weights, order)
    billed = _split(billed_minor, weights, order)
    others = {view: _split(minor, weights, order) for view, minor in extra.items()}
    return [
        {
            **common,
            **{view: to_money(split[index], minor_unit) for view, split in others.items()},
            **{column: line[column] for column in LINE_KEY if column != "backend_id"},
            CALLER_ID: line.get(CALLER_ID),
            "allocation_basis": _BASIS[kind],
            "allocation_quantity": Decimal(weight.numerator) / Decimal(weight.denominator),
            "effective_cost": to_money(effective_share, minor_unit),
            "billed_cost": to_money(billed_share, minor_unit),
            "unattributed_reason": None,
        }
        for index, ((line, weight), effective_share, billed_share) in enumerate(
            zip(pool, effective, billed, strict=True)
        )
    ]


def _unused_commitment(row: dict) -> bool:
    """A commitment discount's unused part (read for the commitments the named resources use)."""
    return (row["commitment_discount_status"] or "").lower() == "unused" and bool(row["commitment_discount_id"])


def _unused_commitment_share(row: dict, effective_minor: int, billed_minor: int, minor_unit: int) -> dict:
    """Reserved PTU-hours no deployment used: no deployment, product or idle policy caused them, so under
    every policy they stay with the platform, visible as unused PTU cost (never spread over products)."""
    return {
        "product_id": PLATFORM_UNALLOCATED_PRODUCT,
        "subscription_id": None,
        "model_name": UNKNOWN,
        "deployment_name": UNKNOWN,
        "cost_type": CostType.ptu_unused.value,
        CALLER_ID: None,
        "allocation_basis": UNUSED_COMMITMENT_BASIS,
        "allocation_quantity": Decimal(0),
        "effective_cost": to_money(effective_minor, minor_unit),
        "billed_cost": to_money(billed_minor, minor_unit),
        "unattributed_reason": (
            f"unused commitment: reserved PTU-hours of {row['commitment_discount_id']} no deployment used"
        ),
    }


def _line_order(line: dict) -> tuple:
    return (*(line[column] or "" for column in LINE_KEY), line.get(CALLER_ID) or "")


def _split(total: int, weights: list[Fraction], order: list[tuple]) -> list[int]:
    whole = sum(weights, Fraction(0))
    return split_by_largest_remainder(total, [total * weight / whole for weight in weights], order)


def _origin_id(origin: _Origin, day: date) -> str:
    """The export's identifiers of the origin charge: resource, meter, price, commitment and day."""
    values = dict(zip(ORIGIN_COLUMNS, origin.key, strict=True))
    commitment = values["commitment_discount_id"] or "none"
    status = values["commitment_discount_status"] or "none"
    return (
        f"{values['resource_id']}|meter={values['meter_id'] or values['meter_name']}|price={values['sku_price_id']}"
        f"|{values['charge_category']}|{values['pricing_category']}|commitment={commitment}:{status}|{day}"
    )


def actual_totals(allocations: pa.Table) -> dict[tuple[str, date], tuple[Decimal, Decimal]]:
    """(backend, day) -> (effective, billed) summed over the allocation's shares."""
    totals: defaultdict[tuple[str, date], list[Decimal]] = defaultdict(lambda: [Decimal(0), Decimal(0)])
    for row in allocations.select(["backend_id", "usage_date", "effective_cost", "billed_cost"]).to_pylist():
        totals[(row["backend_id"], row["usage_date"])][0] += row["effective_cost"]
        totals[(row["backend_id"], row["usage_date"])][1] += row["billed_cost"]
    return {key: (effective, billed) for key, (effective, billed) in totals.items()}
