"""Checks of the PTU capacity assets. They only judge; the assets measure (`defs/partition_checks.py`)."""

from decimal import Decimal

import dagster as dg
import pyarrow as pa

from chargeback_pipeline.defs.metadata import markdown_rows, money

PTU_COUNT_IS_CHEAPEST = "ptu_count_is_cheapest"


def ptu_count_is_cheapest(asset: dg.AssetKey, summary: pa.Table, warn_saving: Decimal) -> dg.AssetCheckResult:
    """Warns when a PTU deployment's cheapest count (the what-if) is not its current one and would save
    more than `warn_saving` a month; the table names each such deployment, its counts and the saving."""
    rows = summary.to_pylist()
    flagged = [r for r in rows if r["best_ptu_count"] != r["current_ptu_count"] and r["saving"] > warn_saving]
    currency = ", ".join(sorted({r["currency"] for r in rows}))
    return dg.AssetCheckResult(
        asset_key=asset,
        check_name=PTU_COUNT_IS_CHEAPEST,
        passed=not flagged,
        severity=dg.AssetCheckSeverity.WARN,
        description=(
            "; ".join(
                f"{r['deployment_name']} ({r['backend_id']}): {r['current_ptu_count']} -> {r['best_ptu_count']} PTU "
                f"saves {r['saving']:,.2f} {r['currency']} ({r['saturated_hours']} saturated hours, p95 "
                f"{r['p95_utilization_percent']}%)"
                for r in flagged
            )
            or None
        ),
        metadata={
            "warn_saving": money(warn_saving),
            "currency": currency,
            "deployments_checked": len(rows),
            "deployments_to_resize": len(flagged),
            "possible_saving": money(sum((r["saving"] for r in flagged), Decimal(0))),
            "to_resize": markdown_rows(
                [
                    {
                        "deployment": f"{r['backend_id']}/{r['deployment_name']}",
                        "current_ptu_count": r["current_ptu_count"],
                        "best_ptu_count": r["best_ptu_count"],
                        "current_cost": r["current_cost"],
                        "best_cost": r["best_cost"],
                        "saving": r["saving"],
                        "best_saturated_hours": r["best_saturated_hours"],
                    }
                    for r in flagged
                ],
                empty="_every PTU deployment is at its cheapest count_",
            ),
        },
    )
