"""Checks of the PTU capacity assets. They only judge; the assets measure (`defs/partition_checks.py`)."""

from decimal import Decimal

import dagster as dg
import pyarrow as pa

from chargeback_pipeline.defs.metadata import markdown_rows, money_value

PTU_COUNT_IS_CHEAPEST = "ptu_count_is_cheapest"


def ptu_count_is_cheapest(
    asset: dg.AssetKey, summary: pa.Table, warn_saving: Decimal, minor_unit: int = 2
) -> dg.AssetCheckResult:
    """Warns when a PTU deployment's advised count (the what-if, calibrated) is not its current one: "add"
    (saturation above target), or "cut" saving more than `warn_saving` a month at the run-rate; and when
    the what-if cannot calibrate (its advice cannot be trusted). The table names each, with the numbers;
    money as every metadata writes it (`money_text`: `1,260.60 USD`, at the currency's `minor_unit`)."""
    rows = summary.to_pylist()
    flagged = [
        r
        for r in rows
        if r["action"] in ("add", "cannot calibrate")
        or (r["action"] == "cut" and r["monthly_run_rate_saving"] > warn_saving)
    ]
    currency = ", ".join(sorted({r["currency"] for r in rows}))  # the pricing file's one currency
    return dg.AssetCheckResult(
        asset_key=asset,
        check_name=PTU_COUNT_IS_CHEAPEST,
        passed=not flagged,
        severity=dg.AssetCheckSeverity.WARN,
        description=(
            "; ".join(f"{r['deployment_name']} ({r['backend_id']}): {r['recommendation']}" for r in flagged) or None
        ),
        metadata={
            "warn_saving": money_value(warn_saving, currency, minor_unit),
            "currency": currency,
            "deployments_checked": len(rows),
            "deployments_to_resize": len(flagged),
            "possible_saving": money_value(
                sum((max(r["saving"] or 0, 0) for r in flagged), Decimal(0)), currency, minor_unit
            ),
            "to_resize": markdown_rows(
                [
                    {
                        "deployment": f"{r['backend_id']}/{r['deployment_name']}",
                        "action": r["action"],
                        "current_ptu_count": r["current_ptu_count"],
                        "best_ptu_count": r["best_ptu_count"],
                        "current_cost": r["current_cost"],
                        "best_cost": r["best_cost"],
                        "monthly_run_rate_saving": r["monthly_run_rate_saving"],
                        "saturated_minutes": r["saturated_minutes"],
                        "best_saturated_minutes": r["best_saturated_minutes"],
                    }
                    for r in flagged
                ],
                empty="_every PTU deployment is at its cheapest count_",
                currency=currency,
                minor_unit=minor_unit,
            ),
        },
    )
