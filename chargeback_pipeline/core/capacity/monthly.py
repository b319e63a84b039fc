"""A month of one PTU deployment's hourly utilisation, priced: its percentiles, spillover and what-if.

Turns the hourly `ptu_utilization` rows of a month into `rightsizing.DemandHour`s (with their minutes)
with the pricing file's rates (the PTU rate in force each hour, the model's pay-as-you-go rates each day)
and into the two published tables: one summary row per PTU deployment, one what-if row per deployment and
candidate count. The advice is given only when the what-if reproduces the observed saturation at the
deployed count (`calibration`); it is the cheapest count meeting the saturation target
(`rightsizing.meeting_target`), "add", "cut" or "keep", with its saving as a monthly run-rate of the
measured window (x 730 hours / hours measured: Azure's billing month). A monthly reservation changes
from the next month on (its term), an hourly rate at once.
"""

from datetime import date, datetime, timedelta
from decimal import Decimal
from fractions import Fraction

import pyarrow as pa

from chargeback_pipeline.core.billing.money import to_money
from chargeback_pipeline.core.billing.pricing import Pricing, PricingError
from chargeback_pipeline.core.capacity.calibration import Calibration, ObservedHour, calibrate
from chargeback_pipeline.core.capacity.capacity_month import MONTH_DEPLOYMENT_FIELDS
from chargeback_pipeline.core.capacity.rightsizing import (
    SATURATED_MINUTES_TARGET,
    DemandHour,
    WhatIf,
    meeting_target,
    nearest_rank_percentile,
    rightsize,
)
from chargeback_pipeline.core.periods import month_text
from chargeback_pipeline.storage.schemas import MONEY, MONTH, UTC_TIMESTAMP

HOURS_PER_MONTH = 730  # Azure's billing month: monthly run-rates are the measured window scaled to it
CANNOT_CALIBRATE = "cannot calibrate"

PERCENTILES = (50, 95, 99)

RIGHTSIZING_SCHEMA = pa.schema(
    [
        *MONTH_DEPLOYMENT_FIELDS,
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
        ("measured_from", UTC_TIMESTAMP),
        ("measured_until", UTC_TIMESTAMP),
        ("saturated_minutes", pa.int64()),
        ("model_saturated_minutes", pa.int64()),
        ("spillover_weighted_tokens", pa.int64()),
        ("model_spillover_weighted_tokens", pa.int64()),
        ("calibrated", pa.bool_()),
        ("calibration", pa.string()),
        ("action", pa.string()),
        ("best_saturated_minutes", pa.int64()),
        ("monthly_run_rate_saving", MONEY),
    ]
)

WHAT_IF_SCHEMA = pa.schema(
    [
        ("month", MONTH),
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
        ("saturated_minutes", pa.int64()),
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
                minute_demand=tuple(row.get("minute_demand_weighted_tokens") or ()),
            )
        )
    return hours


def _money(amount: Fraction, minor_unit: int) -> Decimal:
    return to_money(round(amount * 10**minor_unit), minor_unit)


def _observed(row: dict) -> ObservedHour:
    # One point an hour is an hourly metric (an older export, a PT1H source), not minutes: not compared.
    per_minute = (row.get("azure_minutes_reported") or 0) > 1
    return ObservedHour(
        azure_saturated_minutes=row.get("azure_saturated_minutes") if per_minute else None,
        spill_weighted_tokens=row["spillover_weighted_tokens"],
        minute_throttled=tuple(row.get("minute_throttled_requests") or ()),
    )


def _window(rows: list[dict]) -> str:
    first, last = rows[0]["usage_hour"], rows[-1]["usage_hour"]
    return f"measured {first:%Y-%m-%d %H:00} to {last + timedelta(hours=1):%Y-%m-%d %H:00} UTC, {len(rows)} hours"


def _calibration_text(calibration: Calibration) -> str:
    if calibration.problems:
        return "; ".join(calibration.problems)
    observed = calibration.observed_saturated_minutes
    return (
        f"reproduced: {calibration.model_saturated_minutes} saturated minutes"
        + (f" (Azure: {observed})" if observed is not None else "")
        + f", {calibration.model_spill_weighted_tokens:,} weighted tokens over capacity "
        f"({calibration.observed_spill_weighted_tokens:,} spilled), {calibration.throttled_in_model_saturated_minutes} "
        f"of {calibration.throttled_requests} 429s in those minutes"
    )


def _recommendation(
    current: int,
    best: WhatIf,
    current_what_if: WhatIf,
    run_rate: Decimal,
    currency: str,
    window: str,
    term: str,
    held_back: str = "",
) -> tuple[str, str]:
    """(action, sentence); `held_back` says why a cut was not advised (part of a "keep")."""
    minutes = f"saturated minutes {current_what_if.saturated_minutes} -> {best.saturated_minutes}"
    target = f"target <= {float(SATURATED_MINUTES_TARGET):.0%} of minutes"
    if best.ptu_count == current:
        return "keep", f"keep {current} PTU: {minutes} ({target}); {held_back}{window}"
    action = "cut" if (best.ptu_count or 0) < current else "add"
    money_words = f"saves {run_rate:,.2f}" if run_rate >= 0 else f"costs {-run_rate:,.2f} more"
    return action, (
        f"{action} {abs((best.ptu_count or 0) - current)} PTU ({current} -> {best.ptu_count}): {minutes} ({target}); "
        f"{money_words} {currency} a month at the run-rate of the {window}; {term}"
    )


def _term(deployment, hour: datetime) -> str:
    rate = deployment.rate_on(hour.date())
    if rate.monthly_reservation_per_ptu is not None:
        following = (hour.replace(day=1) + timedelta(days=32)).replace(day=1)
        return f"monthly reservation: from {following:%Y-%m} (its term)"
    return "hourly rate: from now"


def month_rightsizing(
    hourly: pa.Table,
    pricing: Pricing,
    month: date,
    increment: int,
    minimum: int,
    pricing_file: str,
    *,
    min_hours_to_cut: int,
) -> tuple[pa.Table, pa.Table]:
    """(summary, what-if) of every PTU deployment in the month's hourly utilisation rows. `increment` and
    `minimum` are the PTU steps of deployments whose pricing entry sets none. A cheaper count found on
    fewer than `min_hours_to_cut` measured hours is named, not advised: the advice stays "keep"."""
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
        calibration = calibrate(hours, [_observed(r) for r in rows], tokens_per_ptu_hour)
        window = _window(rows)
        current_cost = _money(result.current.total_cost, minor_unit)
        best = meeting_target(result.scenarios, current_count, 60 * len(rows))
        premature_cut = None
        if (best.ptu_count or 0) < current_count and len(rows) < min_hours_to_cut:
            premature_cut, best = best, next(s for s in result.scenarios if s.ptu_count == current_count)
        best_cost = _money(best.total_cost, minor_unit)
        saving = current_cost - best_cost
        run_rate = _money((result.current.total_cost - best.total_cost) * HOURS_PER_MONTH / len(rows), minor_unit)
        if calibration.calibrated:
            term = _term(deployment, rows[-1]["usage_hour"])
            held_back = (
                ""
                if premature_cut is None
                else f"too little evidence to cut: {len(rows)} of the {min_hours_to_cut} hours a cut needs (these "
                f"hours alone would suggest {premature_cut.ptu_count} PTU, saturated minutes "
                f"{premature_cut.saturated_minutes}; CHARGEBACK_RIGHTSIZING_MIN_DAYS_TO_CUT); "
            )
            action, recommendation = _recommendation(
                current_count, best, result.current, run_rate, currency, window, term, held_back
            )
        else:
            action = CANNOT_CALIBRATE
            recommendation = (
                f"cannot calibrate: at {current_count} PTU the capacity model does not reproduce what was observed "
                f"({_calibration_text(calibration)}); check pricing.models.{rows[-1]['model_name']}."
                f"ptu_input_tokens_per_minute and output_token_weight; no count is recommended ({window})"
            )
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
                "month": month_text(month),
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
                "best_ptu_count": best.ptu_count if calibration.calibrated else None,
                "best_cost": best_cost if calibration.calibrated else None,
                "saving": saving if calibration.calibrated else None,
                "best_saturated_hours": best.saturated_hours if calibration.calibrated else None,
                "recommendation": recommendation,
                "measured_from": rows[0]["usage_hour"],
                "measured_until": rows[-1]["usage_hour"] + timedelta(hours=1),
                "saturated_minutes": calibration.observed_saturated_minutes,
                "model_saturated_minutes": calibration.model_saturated_minutes,
                "spillover_weighted_tokens": calibration.observed_spill_weighted_tokens,
                "model_spillover_weighted_tokens": calibration.model_spill_weighted_tokens,
                "calibrated": calibration.calibrated,
                "calibration": _calibration_text(calibration),
                "action": action,
                "best_saturated_minutes": best.saturated_minutes if calibration.calibrated else None,
                "monthly_run_rate_saving": run_rate if calibration.calibrated else None,
            }
        )
        for scenario in result.scenarios:
            scenarios.append(
                {
                    "month": month_text(month),
                    "backend_id": backend_id,
                    "deployment_name": name,
                    "ptu_count": scenario.ptu_count,
                    "ptu_cost": _money(scenario.ptu_cost, minor_unit),
                    "paygo_cost": _money(scenario.paygo_cost, minor_unit),
                    "total_cost": _money(scenario.total_cost, minor_unit),
                    "saturated_hours": scenario.saturated_hours,
                    "overflow_weighted_tokens": round(scenario.overflow_weighted_tokens),
                    "is_current": scenario.ptu_count == current_count,
                    "is_best": calibration.calibrated and scenario.ptu_count == best.ptu_count,
                    "saturated_minutes": scenario.saturated_minutes,
                }
            )
    return (
        pa.Table.from_pylist(summary, schema=RIGHTSIZING_SCHEMA),
        pa.Table.from_pylist(scenarios, schema=WHAT_IF_SCHEMA),
    )
