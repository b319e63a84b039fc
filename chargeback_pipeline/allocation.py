"""Money: turn attributed token usage into a bill per APIM product that adds up to what Azure invoices.

Pure functions over pyarrow Tables (no Dagster, no I/O): `allocate_day` makes the daily chargeback
lines, `monthly_statement` sums them per product, `to_focus` exports them as FOCUS 1.2.

How a day is priced (rates are those in force on that day, see `chargeback_pipeline.pricing`):
- PTU. Each deployed hour of a PTU deployment has a cost. Its exact amount is rounded to the minor
  unit cumulatively over the calendar month (hour cost = round(C(h+1)) - round(C(h)), where C(h) is
  the exact cost of the month's first h hours, half-to-even), so a month's hours sum exactly to the
  rounded monthly cost (a monthly reservation: exactly the reservation). That hour cost is split over
  the hour's users (APIM lines and the "unattributed" line) by weighted tokens, i.e.
  (prompt tokens + output_token_weight * completion tokens), following the unused-capacity policy:
    proportional  everything is split by weighted tokens; an hour nobody used goes to
                  "platform-unallocated".
    unallocated   users pay cost * weighted / max(used, capacity); the rest is "platform-unallocated".
    fixed         users pay as under `unallocated`; the rest is split by the fixed shares (cost type
                  `ptu_unused`), whether those products used the hour or not.
- Pay-as-you-go spillover. Each line is priced directly by its tokens; the deployment-day total is
  rounded once (half-to-even) and split over its lines.
- Rounding. Every split is a largest-remainder split at the minor unit: each line gets its exact
  amount rounded down, and the units left over go to the largest remainders (ties: by the line's
  deployment, product, subscription, model, cost type). The lines of a deployment-hour (PTU) or
  deployment-day (pay-as-you-go) sum exactly to its cost, no line is negative, and each is within one
  minor unit of its exact share.
"""

import json
import math
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from enum import StrEnum
from fractions import Fraction

import pyarrow as pa
import pyarrow.compute as pc

from chargeback_pipeline.pricing import (
    BackendKind,
    CachedTokenMode,
    Deployment,
    NoRateError,
    Pricing,
    UnusedCapacityPolicy,
    day_hours,
    utc_day_start,
)
from chargeback_pipeline.schemas import UTC_TIMESTAMP

UNATTRIBUTED_PRODUCT = "unattributed"  # tokens in the deployment metrics that no APIM log accounts for
PLATFORM_UNALLOCATED_PRODUCT = "platform-unallocated"  # PTU capacity nobody is charged for
RESERVED_PRODUCTS = frozenset({UNATTRIBUTED_PRODUCT, PLATFORM_UNALLOCATED_PRODUCT})


class CostType(StrEnum):
    ptu = "ptu"  # share of a PTU deployment's hours, by weighted tokens
    ptu_unused = "ptu_unused"  # unused PTU capacity: the platform line, or a fixed share
    paygo = "paygo"  # pay-as-you-go tokens, priced directly


# Money is exact decimal, always a whole number of the currency's minor unit.
MONEY = pa.decimal128(18, 6)
QUANTITY = pa.decimal128(38, 6)

HOURLY_USAGE_SCHEMA = pa.schema(
    [
        ("usage_hour", UTC_TIMESTAMP),
        ("product_id", pa.string()),
        ("subscription_id", pa.string()),
        ("model_name", pa.string()),
        ("deployment_name", pa.string()),
        ("backend_id", pa.string()),
        ("prompt_tokens", pa.int64()),
        ("completion_tokens", pa.int64()),
        ("calls", pa.int64()),
    ]
)
# Optional usage column, read when pricing.cached_tokens is `deduct` (no source fills it today).
CACHED_PROMPT_TOKENS = "cached_prompt_tokens"

UNATTRIBUTED_SCHEMA = pa.schema(
    [
        ("usage_hour", UTC_TIMESTAMP),
        ("deployment_name", pa.string()),
        ("prompt_tokens", pa.int64()),
        ("completion_tokens", pa.int64()),
    ]
)
# Optional unattributed column; needed only when one deployment name exists on several backends.
BACKEND_ID = "backend_id"

DAILY_CHARGEBACK_SCHEMA = pa.schema(
    [
        ("usage_date", pa.date32()),
        ("product_id", pa.string()),
        ("subscription_id", pa.string()),  # null on unattributed and unused-capacity lines
        ("model_name", pa.string()),
        ("deployment_name", pa.string()),
        ("backend_id", pa.string()),
        ("cost_type", pa.string()),  # a CostType value
        ("calls", pa.int64()),
        ("prompt_tokens", pa.int64()),
        ("completion_tokens", pa.int64()),
        ("total_tokens", pa.int64()),
        ("weighted_tokens", QUANTITY),  # null where the model's output weight is unknown (paygo only)
        ("output_token_weight", QUANTITY),
        ("ptu_cost", MONEY),
        ("paygo_cost", MONEY),
        ("total_cost", MONEY),
        ("currency", pa.string()),
        ("rate_effective_from", pa.date32()),  # the PTU rate or token prices the day was priced with
    ]
)


@dataclass(frozen=True)
class _LineKey:
    product_id: str
    subscription_id: str | None
    model_name: str
    deployment_name: str
    backend_id: str
    cost_type: CostType

    def order(self) -> tuple[str, ...]:
        return (
            self.deployment_name,
            self.backend_id,
            self.product_id,
            self.subscription_id or "",
            self.model_name,
            self.cost_type.value,
        )


@dataclass
class _Line:
    calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    weighted_tokens: Decimal | None = Decimal(0)
    ptu_minor: int = 0
    paygo_minor: int = 0

    def is_empty(self) -> bool:
        return not (self.calls or self.prompt_tokens or self.completion_tokens or self.ptu_minor or self.paygo_minor)


@dataclass(frozen=True)
class _Usage:
    """Tokens of one line in one hour."""

    hour: datetime
    key: _LineKey
    calls: int
    prompt_tokens: int
    completion_tokens: int
    cached_prompt_tokens: int = 0


# --- Rounding -------------------------------------------------------------------------------------


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


def _to_money(minor_units: int, minor_unit: int) -> Decimal:
    return Decimal(minor_units).scaleb(-minor_unit).quantize(Decimal("0.000001"))


def _ptu_hour_costs_minor(deployment: Deployment, day: date, minor_unit: int) -> list[int]:
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
    return [_to_money(cost, minor_unit) for cost in _ptu_hour_costs_minor(deployment, day, minor_unit)]


# --- Reading the inputs ---------------------------------------------------------------------------


def _checked_rows(
    table: pa.Table, schema: pa.Schema, optional: Mapping[str, pa.DataType], nullable: set[str], what: str, day: date
) -> list[dict]:
    """The rows of `day`, with types, nulls, signs and hour alignment checked; a clear error otherwise."""
    missing = [name for name in schema.names if name not in table.column_names]
    if missing:
        raise ValueError(f"{what} lacks column(s) {', '.join(missing)}; expected {', '.join(schema.names)}")
    fields = [*schema, *(pa.field(name, kind) for name, kind in optional.items() if name in table.column_names)]
    columns = {}
    for wanted in fields:
        column = table.column(wanted.name)
        if pa.types.is_timestamp(column.type) and column.type.tz is None:
            raise ValueError(f"{what}.{wanted.name} must be a timezone-aware (UTC) timestamp")
        try:
            column = column.cast(wanted.type)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as error:
            raise ValueError(f"{what}.{wanted.name} must be {wanted.type}, not {column.type}: {error}") from None
        if wanted.name not in nullable and column.null_count:
            raise ValueError(f"{what}.{wanted.name} has {column.null_count} null value(s)")
        if pa.types.is_integer(wanted.type) and len(column) and (pc.min(column).as_py() or 0) < 0:
            raise ValueError(f"{what}.{wanted.name} has negative values")
        columns[wanted.name] = column
    start = utc_day_start(day)
    hours = columns["usage_hour"]
    of_day = pa.table(columns).filter(
        pc.and_(
            pc.greater_equal(hours, pa.scalar(start, UTC_TIMESTAMP)),
            pc.less(hours, pa.scalar(start + timedelta(days=1), UTC_TIMESTAMP)),
        )
    )
    rows = of_day.to_pylist()
    for row in rows:
        if row["usage_hour"] != row["usage_hour"].replace(minute=0, second=0, microsecond=0):
            raise ValueError(f"{what}.usage_hour {row['usage_hour'].isoformat()} is not the start of an hour")
    return rows


def _usage_lines(hourly_usage: pa.Table, pricing: Pricing, day: date) -> list[_Usage]:
    deduct_cached = pricing.cached_tokens == CachedTokenMode.deduct
    optional = {CACHED_PROMPT_TOKENS: pa.int64()} if deduct_cached else {}
    rows = _checked_rows(
        hourly_usage, HOURLY_USAGE_SCHEMA, optional, {"subscription_id", "model_name"}, "hourly_usage", day
    )
    lines = []
    for row in rows:
        if row["product_id"] in RESERVED_PRODUCTS:
            raise ValueError(
                f"hourly_usage: product id {row['product_id']!r} is reserved for the chargeback's own lines"
            )
        deployment = pricing.deployment(row["backend_id"], row["deployment_name"])
        cached = row.get(CACHED_PROMPT_TOKENS) or 0
        if cached > row["prompt_tokens"]:
            raise ValueError(f"hourly_usage: {CACHED_PROMPT_TOKENS} exceeds prompt_tokens at {row['usage_hour']}")
        key = _LineKey(
            product_id=row["product_id"],
            subscription_id=row["subscription_id"],
            model_name=row["model_name"] or deployment.model,
            deployment_name=row["deployment_name"],
            backend_id=row["backend_id"],
            cost_type=_token_cost_type(pricing, row["backend_id"]),
        )
        lines.append(
            _Usage(row["usage_hour"], key, row["calls"], row["prompt_tokens"], row["completion_tokens"], cached)
        )
    return lines


def _unattributed_lines(unattributed: pa.Table, pricing: Pricing, day: date) -> list[_Usage]:
    rows = _checked_rows(
        unattributed, UNATTRIBUTED_SCHEMA, {BACKEND_ID: pa.string()}, {BACKEND_ID}, "unattributed", day
    )
    lines = []
    for row in rows:
        backend_id = row.get(BACKEND_ID) or pricing.backend_of_deployment(row["deployment_name"])
        deployment = pricing.deployment(backend_id, row["deployment_name"])
        key = _LineKey(
            product_id=UNATTRIBUTED_PRODUCT,
            subscription_id=None,
            model_name=deployment.model,
            deployment_name=row["deployment_name"],
            backend_id=backend_id,
            cost_type=_token_cost_type(pricing, backend_id),
        )
        lines.append(_Usage(row["usage_hour"], key, 0, row["prompt_tokens"], row["completion_tokens"]))
    return lines


def _token_cost_type(pricing: Pricing, backend_id: str) -> CostType:
    return CostType.ptu if pricing.backend(backend_id).kind == BackendKind.ptu else CostType.paygo


def _weighted_tokens(usage: _Usage, weight: Decimal | None) -> Decimal | None:
    """Input-equivalent tokens: cached prompt tokens weigh nothing, an output token weighs `weight`."""
    if weight is None:
        return None
    return Decimal(usage.prompt_tokens - usage.cached_prompt_tokens) + Decimal(usage.completion_tokens) * weight


# --- Allocation -----------------------------------------------------------------------------------


@dataclass
class _Day:
    """The chargeback lines of one day as they are built."""

    pricing: Pricing
    day: date
    lines: defaultdict[_LineKey, _Line] = field(default_factory=lambda: defaultdict(_Line))

    def weight_of(self, key: _LineKey) -> Decimal | None:
        model = self.pricing.deployment(key.backend_id, key.deployment_name).model
        return self.pricing.model(model).output_token_weight

    def add_tokens(self, usage: _Usage) -> None:
        line = self.lines[usage.key]
        line.calls += usage.calls
        line.prompt_tokens += usage.prompt_tokens
        line.completion_tokens += usage.completion_tokens
        weighted = _weighted_tokens(usage, self.weight_of(usage.key))
        line.weighted_tokens = (
            None if weighted is None or line.weighted_tokens is None else line.weighted_tokens + weighted
        )


def allocate_day(hourly_usage: pa.Table, unattributed: pa.Table, pricing: Pricing, day: date) -> pa.Table:
    """The daily chargeback lines of `day` (UTC), in DAILY_CHARGEBACK_SCHEMA.

    hourly_usage: HOURLY_USAGE_SCHEMA, billable requests, one row per group and hour (repeated groups
    are summed). unattributed: UNATTRIBUTED_SCHEMA, tokens of the deployment metrics that the logs do
    not hold (>= 0), optionally with backend_id. Rows of other days are ignored. Every PTU deployment
    of the pricing file is charged for every deployed hour of the day, used or not.
    Raises UnknownDeploymentError for a backend or deployment the pricing file does not price, and
    NoRateError for pay-as-you-go usage on a day before the model's first price.
    """
    if isinstance(day, datetime):
        day = day.date()
    usage = _usage_lines(hourly_usage, pricing, day) + _unattributed_lines(unattributed, pricing, day)
    built = _Day(pricing, day)
    for item in usage:
        built.add_tokens(item)
    _allocate_ptu(built, [u for u in usage if u.key.cost_type == CostType.ptu])
    _allocate_paygo(built, [u for u in usage if u.key.cost_type == CostType.paygo])
    return _daily_table(built)


def _allocate_ptu(built: _Day, usage: list[_Usage]) -> None:
    pricing = built.pricing
    weights: defaultdict[tuple[str, str, datetime], defaultdict[_LineKey, Fraction]] = defaultdict(
        lambda: defaultdict(Fraction)
    )
    for item in usage:
        weighted = _weighted_tokens(item, built.weight_of(item.key))
        assert weighted is not None  # PTU models have a weight: checked when the pricing file loads
        weights[(item.key.backend_id, item.key.deployment_name, item.hour)][item.key] += Fraction(weighted)
    for backend_id, backend in pricing.backends.items():
        if backend.kind == BackendKind.ptu:
            for name in backend.deployments:
                _allocate_ptu_deployment(built, backend_id, name, weights)


def _allocate_ptu_deployment(
    built: _Day, backend_id: str, name: str, weights: Mapping[tuple[str, str, datetime], Mapping[_LineKey, Fraction]]
) -> None:
    """Charge every hour of the day of one PTU deployment, used or not."""
    pricing, day = built.pricing, built.day
    deployment = pricing.deployment(backend_id, name)
    hour_costs = _ptu_hour_costs_minor(deployment, day, pricing.currency_minor_unit)
    if not any(hour_costs):
        return  # not deployed today: its users' lines carry tokens but no cost

    def unused_line(product: str) -> _LineKey:
        return _LineKey(product, None, deployment.model, name, backend_id, CostType.ptu_unused)

    capacity = _capacity_if_needed(pricing, backend_id, name, day)
    for hour, cost in zip(day_hours(day), hour_costs, strict=True):
        shares = _share_ptu_hour(cost, weights.get((backend_id, name, hour), {}), pricing, capacity, unused_line)
        for key, amount in shares.items():
            built.lines[key].ptu_minor += amount


def _capacity_if_needed(pricing: Pricing, backend_id: str, deployment_name: str, day: date) -> int | None:
    if pricing.unused_capacity.policy == UnusedCapacityPolicy.proportional:
        return None
    return pricing.ptu_capacity_per_hour(backend_id, deployment_name, day)


def _share_ptu_hour(
    cost: int,
    weights: Mapping[_LineKey, Fraction],
    pricing: Pricing,
    capacity: int | None,
    unused_line: Callable[[str], _LineKey],
) -> dict[_LineKey, int]:
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


def _allocate_paygo(built: _Day, usage: list[_Usage]) -> None:
    pricing, day = built.pricing, built.day
    scale = 10**pricing.currency_minor_unit
    by_deployment: defaultdict[tuple[str, str], defaultdict[_LineKey, Fraction]] = defaultdict(
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
    for exact in by_deployment.values():
        total = round(sum(exact.values(), Fraction(0)))  # once per deployment-day, half to even
        keys = list(exact)
        amounts = split_by_largest_remainder(total, [exact[k] for k in keys], [k.order() for k in keys])
        for key, amount in zip(keys, amounts, strict=True):
            built.lines[key].paygo_minor += amount


def _rate_effective_from(pricing: Pricing, key: _LineKey, day: date) -> date | None:
    deployment = pricing.deployment(key.backend_id, key.deployment_name)
    try:
        if key.cost_type == CostType.paygo:
            return pricing.token_prices_on(deployment.model, day).effective_from
        return deployment.rate_on(day).effective_from
    except NoRateError:
        return None  # a PTU deployment not yet priced that day (it costs nothing then)


def _daily_table(built: _Day) -> pa.Table:
    pricing, minor_unit = built.pricing, built.pricing.currency_minor_unit
    rows = []
    for key in sorted(built.lines, key=_LineKey.order):
        line = built.lines[key]
        if line.is_empty():
            continue
        rows.append(
            {
                "usage_date": built.day,
                "product_id": key.product_id,
                "subscription_id": key.subscription_id,
                "model_name": key.model_name,
                "deployment_name": key.deployment_name,
                "backend_id": key.backend_id,
                "cost_type": key.cost_type.value,
                "calls": line.calls,
                "prompt_tokens": line.prompt_tokens,
                "completion_tokens": line.completion_tokens,
                "total_tokens": line.prompt_tokens + line.completion_tokens,
                "weighted_tokens": line.weighted_tokens,
                "output_token_weight": built.weight_of(key),
                "ptu_cost": _to_money(line.ptu_minor, minor_unit),
                "paygo_cost": _to_money(line.paygo_minor, minor_unit),
                "total_cost": _to_money(line.ptu_minor + line.paygo_minor, minor_unit),
                "currency": pricing.currency,
                "rate_effective_from": _rate_effective_from(pricing, key, built.day),
            }
        )
    return pa.Table.from_pylist(rows, schema=DAILY_CHARGEBACK_SCHEMA)


# --- Monthly statement ----------------------------------------------------------------------------

MONTHLY_STATEMENT_SCHEMA = pa.schema(
    [
        ("month_start", pa.date32()),
        ("product_id", pa.string()),
        ("currency", pa.string()),
        ("calls", pa.int64()),
        ("prompt_tokens", pa.int64()),
        ("completion_tokens", pa.int64()),
        ("total_tokens", pa.int64()),
        ("weighted_tokens", QUANTITY),  # of the lines whose weight is known
        ("ptu_usage_cost", MONEY),  # cost type `ptu`
        ("ptu_unused_cost", MONEY),  # cost type `ptu_unused`
        ("paygo_cost", MONEY),
        ("total_cost", MONEY),
        ("days_covered", pa.int32()),  # distinct days of the month present in the input
        ("days_in_month", pa.int32()),
    ]
)


def _month_start(month: date | str) -> date:
    if isinstance(month, str):
        year, number = month.split("-")[:2]
        return date(int(year), int(number), 1)
    return date(month.year, month.month, 1)


def _next_month(start: date) -> date:
    return date(start.year + start.month // 12, start.month % 12 + 1, 1)


def monthly_statement(daily_lines: pa.Table, month: date | str) -> pa.Table:
    """Per product and currency: the month's tokens and costs (MONTHLY_STATEMENT_SCHEMA).

    `month` is any date in the month or "YYYY-MM". The statement sums the daily lines exactly, so its
    total is the month's PTU cost plus pay-as-you-go cost, to the minor unit.
    """
    start = _month_start(month)
    end = _next_month(start)
    lines = [row for row in daily_lines.to_pylist() if start <= row["usage_date"] < end]
    days_covered = len({row["usage_date"] for row in lines})
    totals: dict[tuple[str, str], dict] = {}
    for row in sorted(lines, key=lambda r: (r["product_id"], r["currency"])):
        total = totals.setdefault((row["product_id"], row["currency"]), _empty_statement_row(start, row, days_covered))
        for column in ("calls", "prompt_tokens", "completion_tokens", "total_tokens", "paygo_cost", "total_cost"):
            total[column] += row[column]
        total["weighted_tokens"] += row["weighted_tokens"] or 0
        cost_column = "ptu_unused_cost" if row["cost_type"] == CostType.ptu_unused else "ptu_usage_cost"
        total[cost_column] += row["ptu_cost"]
    return pa.Table.from_pylist(list(totals.values()), schema=MONTHLY_STATEMENT_SCHEMA)


def _empty_statement_row(start: date, line: dict, days_covered: int) -> dict:
    zero = Decimal(0)
    return {
        "month_start": start,
        "product_id": line["product_id"],
        "currency": line["currency"],
        **dict.fromkeys(("calls", "prompt_tokens", "completion_tokens", "total_tokens"), 0),
        **dict.fromkeys(("weighted_tokens", "ptu_usage_cost", "ptu_unused_cost", "paygo_cost", "total_cost"), zero),
        "days_covered": days_covered,
        "days_in_month": (_next_month(start) - start).days,
    }


# --- FOCUS export ---------------------------------------------------------------------------------

FOCUS_VERSION = "1.2"
FOCUS_SERVICE_CATEGORY = "AI and Machine Learning"
FOCUS_SERVICE_SUBCATEGORY = "Generative AI"
FOCUS_SERVICE_NAME = "Azure OpenAI"
FOCUS_PROVIDER = "Microsoft"
TAG_PREFIX = "chargeback/"

FOCUS_SCHEMA = pa.schema(
    [
        ("BilledCost", MONEY),
        ("BillingAccountId", pa.string()),
        ("BillingAccountName", pa.string()),
        ("BillingCurrency", pa.string()),
        ("BillingPeriodEnd", UTC_TIMESTAMP),
        ("BillingPeriodStart", UTC_TIMESTAMP),
        ("ChargeCategory", pa.string()),
        ("ChargeClass", pa.string()),
        ("ChargeDescription", pa.string()),
        ("ChargeFrequency", pa.string()),
        ("ChargePeriodEnd", UTC_TIMESTAMP),
        ("ChargePeriodStart", UTC_TIMESTAMP),
        ("ConsumedQuantity", QUANTITY),
        ("ConsumedUnit", pa.string()),
        ("ContractedCost", MONEY),
        ("EffectiveCost", MONEY),
        ("InvoiceIssuerName", pa.string()),
        ("ListCost", MONEY),
        ("PricingQuantity", QUANTITY),
        ("PricingUnit", pa.string()),
        ("ProviderName", pa.string()),
        ("PublisherName", pa.string()),
        ("ResourceId", pa.string()),
        ("ResourceName", pa.string()),
        ("ResourceType", pa.string()),
        ("ServiceCategory", pa.string()),
        ("ServiceName", pa.string()),
        ("ServiceSubcategory", pa.string()),
        ("SubAccountId", pa.string()),
        ("SubAccountName", pa.string()),
        ("Tags", pa.string()),
        ("x_ApiManagementProductId", pa.string()),
        ("x_ApiManagementSubscriptionId", pa.string()),
        ("x_ModelName", pa.string()),
        ("x_DeploymentName", pa.string()),
        ("x_BackendId", pa.string()),
        ("x_CostType", pa.string()),
        ("x_Calls", pa.int64()),
        ("x_PromptTokens", pa.int64()),
        ("x_CompletionTokens", pa.int64()),
        ("x_WeightedTokens", QUANTITY),
        ("x_ProvisionedCost", MONEY),
        ("x_PayAsYouGoCost", MONEY),
        ("x_RateEffectiveFrom", pa.date32()),
    ]
)


def to_focus(daily_lines: pa.Table, pricing: Pricing) -> pa.Table:
    """The daily lines as a FOCUS 1.2 cost and usage dataset (FOCUS_SCHEMA), one row per line.

    These are allocated (internal) charges: BilledCost = EffectiveCost = ContractedCost = ListCost =
    the line's total cost (the pricing file holds the prices actually paid). ChargeCategory is Usage,
    ChargeClass null, ChargeFrequency Recurring for PTU lines (the hours cost whether used or not) and
    Usage-Based for pay-as-you-go, charge period the UTC day, billing period the calendar month,
    SubAccountId the APIM product. Quantities: ConsumedQuantity is the line's tokens (ConsumedUnit "Tokens");
    PricingQuantity is what the cost was computed from: weighted tokens for PTU lines ("Tokens", 0 for
    unused capacity), tokens / 1000 for pay-as-you-go ("1000 Tokens").
    """
    rows = [_focus_row(line, pricing) for line in daily_lines.to_pylist()]
    return pa.Table.from_pylist(rows, schema=FOCUS_SCHEMA)


def _focus_row(line: dict, pricing: Pricing) -> dict:
    charge_start = utc_day_start(line["usage_date"])
    month_start = _month_start(line["usage_date"])
    cost = line["total_cost"]
    resource_id = _focus_resource_id(pricing, line["backend_id"], line["deployment_name"])
    return {
        "BilledCost": cost,
        "BillingAccountId": pricing.focus.billing_account_id,
        "BillingAccountName": pricing.focus.billing_account_name,
        "BillingCurrency": line["currency"],
        "BillingPeriodEnd": datetime.combine(_next_month(month_start), time(), UTC),
        "BillingPeriodStart": datetime.combine(month_start, time(), UTC),
        "ChargeCategory": "Usage",
        "ChargeClass": None,  # not a correction of an already invoiced period
        "ChargeDescription": _charge_description(line),
        # PTU hours are charged whether used or not; tokens on pay-as-you-go only when used.
        "ChargeFrequency": "Usage-Based" if line["cost_type"] == CostType.paygo else "Recurring",
        "ChargePeriodEnd": charge_start + timedelta(days=1),
        "ChargePeriodStart": charge_start,
        "ConsumedQuantity": Decimal(line["total_tokens"]),
        "ConsumedUnit": "Tokens",
        "ContractedCost": cost,
        "EffectiveCost": cost,
        "InvoiceIssuerName": FOCUS_PROVIDER,
        "ListCost": cost,
        **_focus_pricing_quantity(line),
        "ProviderName": FOCUS_PROVIDER,
        "PublisherName": FOCUS_PROVIDER,
        "ResourceId": resource_id,
        "ResourceName": line["deployment_name"] if resource_id else None,
        "ResourceType": "Azure OpenAI deployment" if resource_id else None,
        "ServiceCategory": FOCUS_SERVICE_CATEGORY,
        "ServiceName": FOCUS_SERVICE_NAME,
        "ServiceSubcategory": FOCUS_SERVICE_SUBCATEGORY,
        "SubAccountId": line["product_id"],
        "SubAccountName": line["product_id"],
        "Tags": _focus_tags(line),
        "x_ApiManagementProductId": line["product_id"],
        "x_ApiManagementSubscriptionId": line["subscription_id"],
        "x_ModelName": line["model_name"],
        "x_DeploymentName": line["deployment_name"],
        "x_BackendId": line["backend_id"],
        "x_CostType": line["cost_type"],
        "x_Calls": line["calls"],
        "x_PromptTokens": line["prompt_tokens"],
        "x_CompletionTokens": line["completion_tokens"],
        "x_WeightedTokens": line["weighted_tokens"],
        "x_ProvisionedCost": line["ptu_cost"],
        "x_PayAsYouGoCost": line["paygo_cost"],
        "x_RateEffectiveFrom": line["rate_effective_from"],
    }


def _focus_pricing_quantity(line: dict) -> dict:
    if line["cost_type"] == CostType.paygo:
        return {"PricingQuantity": Decimal(line["total_tokens"]) / 1000, "PricingUnit": "1000 Tokens"}
    weighted = line["weighted_tokens"] if line["cost_type"] == CostType.ptu else Decimal(0)
    return {"PricingQuantity": weighted, "PricingUnit": "Tokens"}


def _focus_resource_id(pricing: Pricing, backend_id: str, deployment_name: str) -> str | None:
    backend = pricing.backends.get(backend_id)
    if backend is None or not backend.resource_id:
        return None  # FOCUS: ResourceName and ResourceType are null whenever ResourceId is
    return f"{backend.resource_id.rstrip('/')}/deployments/{deployment_name}"


def _charge_description(line: dict) -> str:
    where = f"{line['deployment_name']} ({line['model_name']})"
    if line["cost_type"] == CostType.paygo:
        return f"Pay-as-you-go tokens on {where}"
    if line["cost_type"] == CostType.ptu:
        return f"Share of provisioned throughput of {where} by weighted tokens"
    if line["product_id"] == PLATFORM_UNALLOCATED_PRODUCT:
        return f"Unused provisioned throughput of {where}, left with the platform"
    return f"Fixed share of unused provisioned throughput of {where}"


def _focus_tags(line: dict) -> str:
    tags = {
        f"{TAG_PREFIX}apim-subscription": line["subscription_id"],
        f"{TAG_PREFIX}model": line["model_name"],
        f"{TAG_PREFIX}deployment": line["deployment_name"],
        f"{TAG_PREFIX}cost-type": line["cost_type"],
    }
    return json.dumps({key: value for key, value in tags.items() if value is not None}, sort_keys=True)


def daily_totals_by_deployment(daily_lines: pa.Table) -> dict[tuple[str, str], Decimal]:
    """Total cost per (backend_id, deployment_name): what to compare with Azure's cost details."""
    totals: defaultdict[tuple[str, str], Decimal] = defaultdict(Decimal)
    for row in daily_lines.select(["backend_id", "deployment_name", "total_cost"]).to_pylist():
        totals[(row["backend_id"], row["deployment_name"])] += row["total_cost"]
    return dict(totals)
