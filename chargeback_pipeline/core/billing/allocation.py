"""Money: turn attributed token usage into a bill per APIM product that adds up to what Azure invoices.

Pure functions over pyarrow Tables (no Dagster, no I/O). `allocate_day` makes the daily chargeback
lines; `statements.monthly_statement` sums them per product and `focus.to_focus` exports them.

How a day is priced (rates are those in force on that day, see `chargeback_pipeline.pricing`):
- PTU: every deployed hour costs what the pricing file says, rounded cumulatively over the month
  (`money`), and is split over the hour's users by weighted tokens under the unused-capacity policy
  (`ptu_allocation`).
- Pay-as-you-go spillover: each line is priced directly by its tokens (`paygo_allocation`).
- Every split is a largest-remainder split at the minor unit (`money`): the lines of a deployment-hour
  (PTU) or deployment-day (pay-as-you-go) sum exactly to its cost and no line is negative.
"""

from collections import defaultdict
from datetime import date, datetime
from decimal import Decimal

import pyarrow as pa

from chargeback_pipeline.core.billing.allocation_inputs import not_billable_lines, unattributed_lines, usage_lines
from chargeback_pipeline.core.billing.chargeback_lines import DayLines, LineKey
from chargeback_pipeline.core.billing.money import to_money
from chargeback_pipeline.core.billing.origin_charges import origins_table
from chargeback_pipeline.core.billing.paygo_allocation import allocate_paygo
from chargeback_pipeline.core.billing.pricing import (
    NoRateError,
    Pricing,
    PricingError,
    UnknownDeploymentError,
    model_family,
)
from chargeback_pipeline.core.billing.ptu_allocation import allocate_ptu
from chargeback_pipeline.core.billing.schemas import (
    BACKEND_ID,
    CALLER_ID,
    DAILY_CHARGEBACK_CALLER_SCHEMA,
    DAILY_CHARGEBACK_SCHEMA,
    NOT_BILLABLE_SCHEMA,
    CostType,
)


def allocate_day(
    hourly_usage: pa.Table,
    unattributed: pa.Table,
    pricing: Pricing,
    day: date,
    not_billable: pa.Table | None = None,
) -> pa.Table:
    """The daily chargeback lines of `day` (UTC), in DAILY_CHARGEBACK_SCHEMA.

    hourly_usage: HOURLY_USAGE_SCHEMA, billable requests, one row per group and hour (repeated groups
    are summed); with a caller_id column, the lines are per caller too (DAILY_CHARGEBACK_CALLER_SCHEMA).
    unattributed: UNATTRIBUTED_SCHEMA, tokens of the deployment metrics that the logs do not hold (>= 0),
    optionally with backend_id. not_billable: NOT_BILLABLE_SCHEMA, the day's logged tokens no product
    is billed for, charged on pay-as-you-go backends. Rows of other days are ignored.
    Every PTU deployment of the pricing file is charged for every deployed hour of the day, used or not.
    Raises UnknownDeploymentError for a backend or deployment the pricing file does not price, and
    NoRateError for pay-as-you-go usage on a day before the model's first price.
    """
    return allocate_day_with_origins(hourly_usage, unattributed, pricing, day, not_billable)[0]


def allocate_day_with_origins(
    hourly_usage: pa.Table,
    unattributed: pa.Table,
    pricing: Pricing,
    day: date,
    not_billable: pa.Table | None = None,
) -> tuple[pa.Table, pa.Table]:
    """`allocate_day`'s lines, and the split they were summed from: every origin charge (PTU
    deployment-hour, pay-as-you-go deployment-day) with each line's share, in ORIGIN_ALLOCATION_SCHEMA."""
    if isinstance(day, datetime):
        day = day.date()
    not_billable = NOT_BILLABLE_SCHEMA.empty_table() if not_billable is None else not_billable
    _fail_on_missing_prices(hourly_usage, unattributed, not_billable, pricing, day)
    _fail_on_model_change(hourly_usage, pricing, day)
    usage = (
        usage_lines(hourly_usage, pricing, day)
        + unattributed_lines(unattributed, pricing, day)
        + not_billable_lines(not_billable, pricing, day)
    )
    built = DayLines(pricing, day, with_callers=CALLER_ID in hourly_usage.column_names)
    for item in usage:
        built.add_tokens(item)
    allocate_ptu(built, [u for u in usage if u.key.cost_type == CostType.ptu])
    allocate_paygo(built, [u for u in usage if u.key.cost_type == CostType.paygo])
    origins = origins_table(built.origins, day, pricing.currency_minor_unit, pricing.currency, built.with_callers)
    return _daily_table(built), origins


def _fail_on_missing_prices(
    hourly_usage: pa.Table, unattributed: pa.Table, not_billable: pa.Table, pricing: Pricing, day: date
) -> None:
    """Fail once, listing every backend, deployment and model the day uses that the file does not price."""
    used = {
        (row["backend_id"], row["deployment_name"], row["model_name"])
        for row in hourly_usage.select(["backend_id", "deployment_name", "model_name"]).to_pylist()
    }
    if BACKEND_ID in unattributed.column_names:
        used |= {
            (row[BACKEND_ID], row["deployment_name"], None)
            for row in unattributed.select([BACKEND_ID, "deployment_name"]).to_pylist()
            if row[BACKEND_ID]
        }
    used |= {(row[BACKEND_ID], row["deployment_name"], None) for row in not_billable.to_pylist()}
    missing = pricing.missing_entries(used)
    if missing:
        raise UnknownDeploymentError(
            f"the pricing file does not price everything {day} used; add under pricing.backends (and "
            "pricing.models), then fill in the prices:\n" + "\n".join(missing)
        )


def _fail_on_model_change(hourly_usage: pa.Table, pricing: Pricing, day: date) -> None:
    """A deployment is priced as one model (its weights, its token prices): fail once, naming every
    deployment whose LLM records show another model family during the day, with the hours of each."""
    seen: dict[tuple[str, str], dict[str, list]] = {}
    for row in hourly_usage.select(["usage_hour", "backend_id", "deployment_name", "model_name"]).to_pylist():
        if row["model_name"] and row["usage_hour"].date() == day:
            hours = seen.setdefault((row["backend_id"], row["deployment_name"]), {})
            hours.setdefault(model_family(row["model_name"]), []).append(row["usage_hour"])
    changed = []
    for (backend_id, name), families in sorted(seen.items()):
        priced = model_family(pricing.deployment(backend_id, name).model)
        if len(families) > 1 or priced not in families:
            served = ", ".join(
                f"{family} {min(hours):%H:00}-{max(hours):%H:59}" for family, hours in sorted(families.items())
            )
            changed.append(
                f"{name} on {backend_id} served {served} (UTC) but pricing.backends.{backend_id}.deployments."
                f"{name}.model is {priced}"
            )
    if changed:
        raise PricingError(
            f"a deployment's model changed on {day}, so its tokens cannot be weighed and priced as one model: "
            + "; ".join(changed)
            + ". Give the new model its own deployment (a new name, deployed_from the change) in the pricing "
            "file, or set the deployment's model to the one it serves if the file was wrong."
        )


def _rate_effective_from(pricing: Pricing, key: LineKey, day: date) -> date | None:
    deployment = pricing.deployment(key.backend_id, key.deployment_name)
    try:
        if key.cost_type == CostType.paygo:
            return pricing.token_prices_on(deployment.model, day).effective_from
        return deployment.rate_on(day).effective_from
    except NoRateError:
        return None  # a PTU deployment not yet priced that day (it costs nothing then)


def _daily_table(built: DayLines) -> pa.Table:
    pricing, minor_unit = built.pricing, built.pricing.currency_minor_unit
    rows = []
    for key in sorted(built.lines, key=LineKey.order):
        line = built.lines[key]
        if line.is_empty():
            continue
        rows.append(
            {
                "usage_date": built.day,
                "product_id": key.product_id,
                "subscription_id": key.subscription_id,
                CALLER_ID: key.caller_id,
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
                "ptu_cost": to_money(line.ptu_minor, minor_unit),
                "paygo_cost": to_money(line.paygo_minor, minor_unit),
                "total_cost": to_money(line.ptu_minor + line.paygo_minor, minor_unit),
                "currency": pricing.currency,
                "rate_effective_from": _rate_effective_from(pricing, key, built.day),
            }
        )
    schema = DAILY_CHARGEBACK_CALLER_SCHEMA if built.with_callers else DAILY_CHARGEBACK_SCHEMA
    return pa.Table.from_pylist(rows, schema=schema)


def daily_totals_by_deployment(daily_lines: pa.Table) -> dict[tuple[str, str], Decimal]:
    """Total cost per (backend_id, deployment_name): what to compare with Azure's cost details."""
    totals: defaultdict[tuple[str, str], Decimal] = defaultdict(Decimal)
    for row in daily_lines.select(["backend_id", "deployment_name", "total_cost"]).to_pylist():
        totals[(row["backend_id"], row["deployment_name"])] += row["total_cost"]
    return dict(totals)
