"""A month of each PTU deployment as finance reads it: its PTU count and rate, what its PTU hours cost,
how much of their capacity was used, what the unused part cost, and the effective price per 1,000 tokens.

Independent of the unused-capacity policy: the policy decides *who pays* for idle capacity (everyone in
proportion, the platform line, or fixed shares), never *whether* there was any. So the statement and
`chargeback report` show idle capacity from here under every policy. Per hour, the idle share is
1 - served weighted tokens / capacity (0 when full); the idle cost is that share of the hour's PTU cost.
The effective price is the PTU cost over the tokens the PTU served (prompt + completion), per 1,000.
Amounts are exact fractions until rounded once to the currency's minor unit; the PTU cost is the pricing
file's (an estimate until Azure's invoice: README "Money").
"""

from datetime import date
from decimal import Decimal
from fractions import Fraction

import pyarrow as pa

from chargeback_pipeline.core.billing.money import to_money
from chargeback_pipeline.core.billing.pricing import Pricing
from chargeback_pipeline.core.periods import month_text
from chargeback_pipeline.storage.schemas import MONEY, MONTH

# The columns every month-per-deployment capacity table starts with (this one and ptu_rightsizing's).
MONTH_DEPLOYMENT_FIELDS = [
    ("month", MONTH),
    ("backend_id", pa.string()),
    ("deployment_name", pa.string()),
    ("model_name", pa.string()),
    ("currency", pa.string()),
    ("hours", pa.int64()),
]

PTU_CAPACITY_SCHEMA = pa.schema(
    [
        *MONTH_DEPLOYMENT_FIELDS,
        ("ptu_count", pa.int64()),
        ("rate", pa.string()),
        ("ptu_cost", MONEY),
        ("capacity_weighted_tokens", pa.int64()),
        ("served_weighted_tokens", pa.int64()),
        ("utilization_percent", pa.float64()),
        ("unused_cost", MONEY),
        ("unused_share_percent", pa.float64()),
        ("served_tokens", pa.int64()),
        ("effective_price_per_1k_tokens", pa.decimal128(18, 6)),
        ("saturated_minutes", pa.int64()),
        ("unused_capacity_policy", pa.string()),  # who pays for the unused part (pricing file)
    ]
)


def _rate_text(rate, currency: str) -> str:
    if rate.monthly_reservation_per_ptu is not None:
        return f"{rate.monthly_reservation_per_ptu:,.2f} {currency} per PTU-month (monthly reservation)"
    return f"{rate.hourly_rate_per_ptu:,.2f} {currency} per PTU-hour"


def month_capacity(hourly: pa.Table, pricing: Pricing, month: date) -> pa.Table:
    """One row per PTU deployment measured in the month's hourly `ptu_utilization` rows."""
    minor_unit, currency = pricing.currency_minor_unit, pricing.currency
    grouped: dict[tuple[str, str], list[dict]] = {}
    for row in sorted(hourly.to_pylist(), key=lambda r: (r["backend_id"], r["deployment_name"], r["usage_hour"])):
        grouped.setdefault((row["backend_id"], row["deployment_name"]), []).append(row)
    rows = []
    for (backend_id, name), hours in grouped.items():
        deployment = pricing.deployment(backend_id, name)
        ptu_cost = unused = Fraction(0)
        for hour in hours:
            cost = deployment.hour_cost(hour["usage_hour"])
            ptu_cost += cost
            used = min(Fraction(hour["served_weighted_tokens"], max(hour["capacity_weighted_tokens"], 1)), Fraction(1))
            unused += cost * (1 - used)
        capacity = sum(h["capacity_weighted_tokens"] for h in hours)
        served = sum(h["served_weighted_tokens"] for h in hours)
        tokens = sum(h["served_prompt_tokens"] + h["served_completion_tokens"] for h in hours)
        azure = [h.get("azure_saturated_minutes") for h in hours]
        last = hours[-1]
        rows.append(
            {
                "month": month_text(month),
                "backend_id": backend_id,
                "deployment_name": name,
                "model_name": last["model_name"],
                "currency": currency,
                "hours": len(hours),
                "ptu_count": last["ptu_count"],
                "rate": _rate_text(deployment.rate_on(last["usage_hour"].date()), currency),
                "ptu_cost": to_money(round(ptu_cost * 10**minor_unit), minor_unit),
                "capacity_weighted_tokens": capacity,
                "served_weighted_tokens": served,
                "utilization_percent": round(100 * served / capacity, 1) if capacity else 0.0,
                "unused_cost": to_money(round(unused * 10**minor_unit), minor_unit),
                "unused_share_percent": round(float(100 * unused / ptu_cost), 1) if ptu_cost else 0.0,
                "served_tokens": tokens,
                "effective_price_per_1k_tokens": (
                    Decimal(round(ptu_cost * 1000 * 10**6 / tokens)) / 10**6 if tokens else None
                ),
                "saturated_minutes": None if None in azure else sum(azure),
                "unused_capacity_policy": pricing.unused_capacity.policy.value,
            }
        )
    return pa.Table.from_pylist(rows, schema=PTU_CAPACITY_SCHEMA)
