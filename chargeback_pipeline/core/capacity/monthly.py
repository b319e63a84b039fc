"""A month of one PTU deployment's hourly utilisation, priced: its percentiles, spillover and what-if.

Turns the hourly `ptu_utilization` rows of a month into `rightsizing.DemandHour`s with the pricing file's
rates (the PTU rate in force each hour, the model's pay-as-you-go rates each day) and into the two
published tables: one summary row per PTU deployment, one what-if row per deployment and candidate count.
"""

from datetime import date
from decimal import Decimal
from fractions import Fraction

import pyarrow as pa

from chargeback_pipeline.core.billing.money import to_money
from chargeback_pipeline.core.billing.pricing import Pricing, PricingError
from chargeback_pipeline.core.capacity.rightsizing import (
    DemandHour,
    WhatIf,
    nearest_rank_percentile,
    rightsize,
)
from chargeback_pipeline.storage.schemas import MONEY

PERCENTILES = (50, 95, 99)

RIGHTSIZING_SCHEMA = pa.schema(
    [
        ("month", pa.date32()),
        ("backend_id", pa.string()),
        ("deployment_name", pa.string()),
        ("model_name", pa.string()),
        ("currency", pa.string()),
        ("hours", pa.int64()),
        ("current_ptu_count", pa.int64()),
        ("p50_utilization_percent", pa.float64()),
        ("p95_utilization_percent", pa.float64()),
        ("p99_utilization_percent", pa.float64()),
        ("max_utilization_percent", pa.float64()),
        ("saturated_hours", pa.int64()),
        ("spillover_requests", pa.int64()),
        ("spillover_prompt_tokens", pa.int64()),
        ("spillover_completion_tokens", pa.int64()),
        ("spillover_paygo_cost", MONEY),
        ("throttled_requests", pa.int64()),
        ("current_cost", MONEY),
        ("best_ptu_count", pa.int64()),
        ("best_cost", MONEY),
        ("saving", MONEY),
        ("best_saturated_hours", pa.int64()),
        ("recommendation", pa.string()),
    ]
)

WHAT_IF_SCHEMA = pa.schema(
    [
        ("month", pa.date32()),
        ("backend_id", pa.string()),
        ("deployment_name", pa.string()),
        ("ptu_count", pa.int64()),
        ("ptu_cost", MONEY),
        ("paygo_cost", MONEY),
        ("total_cost", MONEY),
        ("saturated_hours", pa.int64()),
        ("overflow_weighted_tokens", pa.int64()),
        ("is_current", pa.bool_()),
        ("is_best", pa.bool_()),
    ]
)


def _paygo_cost(pricing: Pricing, model: str, day: date, prompt: int, completion: int, pricing_file: str) -> Fraction:
    model_pricing = pricing.model(model)
    if not model_pricing.rates:
        raise PricingError(
            f"{pricing_file}: pricing.models.{model}.rates (pay-as-you-go prices) are needed to price the demand "
            f"that would spill from a smaller PTU deployment of {model!r} (the rightsizing what-if)"
        )
    prices = pricing.token_prices_on(model, day)
    return (prompt * Fraction(prices.input_per_1k) + completion * Fraction(prices.output_per_1k)) / 1000


def demand_hours(rows: list[dict], pricing: Pricing, pricing_file: str) -> list[DemandHour]:
    """One deployment's hourly utilisation rows as priced demand hours."""
    hours = []
    for row in rows:
        hour = row["usage_hour"]
        deployment = pricing.deployment(row["backend_id"], row["deployment_name"])
        rate = deployment.rate_on(hour.date())
        prompt = row["served_prompt_tokens"] + row["spillover_prompt_tokens"]
        completion = row["served_completion_tokens"] + row["spillover_completion_tokens"]
        hours.append(
            DemandHour(
                hour=hour,
                weighted_tokens=Fraction(row["served_weighted_tokens"] + row["spillover_weighted_tokens"]),
                ptu_count=row["ptu_count"],
                cost_per_ptu=deployment.hour_cost(hour) / rate.ptu_count,
                paygo_cost=_paygo_cost(pricing, row["model_name"], hour.date(), prompt, completion, pricing_file),
            )
        )
    return hours


def _money(amount: Fraction, minor_unit: int) -> Decimal:
    return to_money(round(amount * 10**minor_unit), minor_unit)


def _recommendation(current: int, best: WhatIf, saving: Decimal, currency: str, month: date, hours: int) -> str:
    if best.ptu_count == current:
        return f"keep {current} PTU"
    verb = "reduce" if (best.ptu_count or 0) < current else "increase"
    # The saving of the hours measured: a month in progress (or partly measured) says so.
    return f"{verb} to {best.ptu_count} PTU: saves {saving:,.2f} {currency} in {month:%Y-%m} ({hours} hours measured)"


def month_rightsizing(
    hourly: pa.Table, pricing: Pricing, month: date, increment: int, minimum: int, pricing_file: str
) -> tuple[pa.Table, pa.Table]:
    """(summary, what-if) of every PTU deployment in the month's hourly utilisation rows. `increment` and
    `minimum` are the PTU steps of deployments whose pricing entry sets none."""
    minor_unit, currency = pricing.currency_minor_unit, pricing.currency
    grouped: dict[tuple[str, str], list[dict]] = {}
    for row in sorted(hourly.to_pylist(), key=lambda r: (r["backend_id"], r["deployment_name"], r["usage_hour"])):
        grouped.setdefault((row["backend_id"], row["deployment_name"]), []).append(row)
    summary, scenarios = [], []
    for (backend_id, name), rows in grouped.items():
        hours = demand_hours(rows, pricing, pricing_file)
        tokens_per_ptu_hour = rows[-1]["capacity_weighted_tokens"] // rows[-1]["ptu_count"]
        current_count = rows[-1]["ptu_count"]  # the count deployed at the month's last hour
        deployment = pricing.deployment(backend_id, name)  # its own PTU steps, else the defaults
        result = rightsize(
            hours,
            current_count,
            tokens_per_ptu_hour,
            deployment.ptu_increment or increment,
            deployment.ptu_minimum or minimum,
        )
        current_cost = _money(result.current.total_cost, minor_unit)
        best_cost = _money(result.best.total_cost, minor_unit)
        saving = current_cost - best_cost
        utilisation = [r["utilization_percent"] for r in rows]
        spill_prompt = sum(r["spillover_prompt_tokens"] for r in rows)
        spill_completion = sum(r["spillover_completion_tokens"] for r in rows)
        spill_cost = sum(
            (
                _paygo_cost(
                    pricing,
                    r["model_name"],
                    r["usage_hour"].date(),
                    r["spillover_prompt_tokens"],
                    r["spillover_completion_tokens"],
                    pricing_file,
                )
                for r in rows
            ),
            Fraction(0),
        )
        summary.append(
            {
                "month": month,
                "backend_id": backend_id,
                "deployment_name": name,
                "model_name": rows[-1]["model_name"],
                "currency": currency,
                "hours": len(rows),
                "current_ptu_count": current_count,
                **{f"p{p}_utilization_percent": nearest_rank_percentile(utilisation, p) for p in PERCENTILES},
                "max_utilization_percent": max(utilisation),
                "saturated_hours": sum(r["saturated"] for r in rows),
                "spillover_requests": sum(r["spillover_requests"] for r in rows),
                "spillover_prompt_tokens": spill_prompt,
                "spillover_completion_tokens": spill_completion,
                "spillover_paygo_cost": _money(spill_cost, minor_unit),
                "throttled_requests": sum(r["throttled_requests"] for r in rows),
                "current_cost": current_cost,
                "best_ptu_count": result.best.ptu_count,
                "best_cost": best_cost,
                "saving": saving,
                "best_saturated_hours": result.best.saturated_hours,
                "recommendation": _recommendation(current_count, result.best, saving, currency, month, len(rows)),
            }
        )
        for scenario in result.scenarios:
            scenarios.append(
                {
                    "month": month,
                    "backend_id": backend_id,
                    "deployment_name": name,
                    "ptu_count": scenario.ptu_count,
                    "ptu_cost": _money(scenario.ptu_cost, minor_unit),
                    "paygo_cost": _money(scenario.paygo_cost, minor_unit),
                    "total_cost": _money(scenario.total_cost, minor_unit),
                    "saturated_hours": scenario.saturated_hours,
                    "overflow_weighted_tokens": round(scenario.overflow_weighted_tokens),
                    "is_current": scenario.ptu_count == current_count,
                    "is_best": scenario.ptu_count == result.best.ptu_count,
                }
            )
    return (
        pa.Table.from_pylist(summary, schema=RIGHTSIZING_SCHEMA),
        pa.Table.from_pylist(scenarios, schema=WHAT_IF_SCHEMA),
    )
