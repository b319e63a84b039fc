"""The checks of `billed_chargeback`, as pure judges of one day's numbers.

`actual_matches_export` holds the published file (read back) against the export's own rows, summed and
rounded here, per resource: independent of the allocation that produced the file.
`estimate_variance_within_share` warns when a product's actual day is far from its estimate.
"""

from collections import defaultdict
from datetime import date
from decimal import ROUND_HALF_EVEN, Decimal

import dagster as dg
import pyarrow as pa

from chargeback_pipeline.defs.metadata import money_text, money_value

ACTUAL_MATCHES_EXPORT = "actual_matches_export"
ESTIMATE_VARIANCE = "estimate_variance_within_share"


def export_totals(rows: pa.Table, backends: dict[str, str], day: date, minor_unit: int) -> dict[str, tuple]:
    """backend -> (EffectiveCost, BilledCost) of its resource's export rows of `day`, each summed then
    rounded once (half to even) to the minor unit per resource-day, as an invoice rounds a resource's day;
    under None the commitments' unused rows (no backend's), each reservation a resource of its own."""
    sums: defaultdict[tuple, list[Decimal]] = defaultdict(lambda: [Decimal(0), Decimal(0)])
    columns = ["resource_id", "charge_period_start", "effective_cost", "billed_cost", "commitment_discount_status"]
    for row in rows.select(columns).to_pylist():
        resource = (row["resource_id"] or "").lower()
        backend = backends.get(resource)
        unused = backend is None and (row["commitment_discount_status"] or "").lower() == "unused"
        if (backend is not None or unused) and row["charge_period_start"].date() == day:
            sums[(backend, resource)][0] += row["effective_cost"]
            sums[(backend, resource)][1] += row["billed_cost"]
    unit = Decimal(1).scaleb(-minor_unit)
    totals: defaultdict[str | None, list[Decimal]] = defaultdict(lambda: [Decimal(0), Decimal(0)])
    for (backend, _), values in sums.items():
        for i, value in enumerate(values):
            totals[backend][i] += value.quantize(unit, ROUND_HALF_EVEN)
    return {backend: tuple(values) for backend, values in totals.items()}


def published_totals(published: pa.Table, columns=("backend_id", "total_cost", "billed_cost")) -> dict[str, tuple]:
    """backend -> (EffectiveCost, BilledCost) of a published table; `columns` names them (the chargeback's
    by default: total_cost is its amortized cost)."""
    sums: defaultdict[str, list[Decimal]] = defaultdict(lambda: [Decimal(0), Decimal(0)])
    backend, effective, billed = columns
    for row in published.select(list(columns)).to_pylist():
        sums[row[backend]][0] += row[effective]
        sums[row[backend]][1] += row[billed]
    return {backend: tuple(values) for backend, values in sums.items()}


def actual_matches_export(
    asset: dg.AssetKey, expected: dict[str, tuple], found: dict[str, tuple], check_name: str = ACTUAL_MATCHES_EXPORT
) -> dg.AssetCheckResult:
    """Per backend, (EffectiveCost, BilledCost) published (`found`, from a file read back) against the
    export's own rows (`expected`, export_totals)."""
    mismatches = [
        {
            "backend_id": backend,
            "export_effective": str(expected.get(backend, (0, 0))[0]),
            "published_effective": str(found.get(backend, (0, 0))[0]),
            "export_billed": str(expected.get(backend, (0, 0))[1]),
            "published_billed": str(found.get(backend, (0, 0))[1]),
        }
        for backend in sorted(set(expected) | set(found), key=lambda b: b or "")
        if tuple(Decimal(v) for v in expected.get(backend, (0, 0))) != tuple(found.get(backend, (0, 0)))
    ]
    return dg.AssetCheckResult(
        asset_key=asset,
        check_name=check_name,
        passed=not mismatches,
        metadata={"resources_compared": len(expected), "mismatches": mismatches},
        description=None if not mismatches else "the actual day differs from the export's own rows",
    )


def estimate_variance_within_share(
    asset: dg.AssetKey, variance: pa.Table, warn_share: Decimal, currency: str, minor_unit: int
) -> dg.AssetCheckResult:
    over = [
        {
            "product_id": row["product_id"],
            "estimated_cost": money_text(row["estimated_cost"], currency, minor_unit),
            "effective_cost": money_text(row["effective_cost"], currency, minor_unit),
            "variance_share": None if row["variance_share"] is None else str(row["variance_share"]),
        }
        for row in variance.to_pylist()
        if (row["variance_share"] is None and row["variance"] != 0)
        or (row["variance_share"] is not None and abs(row["variance_share"]) > warn_share)
    ]
    unused = sum(variance["unused_commitment_cost"].to_pylist(), Decimal(0))
    return dg.AssetCheckResult(
        asset_key=asset,
        check_name=ESTIMATE_VARIANCE,
        passed=not over,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "warn_share": float(warn_share),
            "products_over": over,
            "products_compared": variance.num_rows,
            # Billed, but outside every variance: the pricing file prices deployments, not reservations.
            "unused_commitment_cost_not_compared": money_value(unused, currency, minor_unit),
        },
        description=(
            None
            if not over
            else f"{len(over)} product(s) billed more than {warn_share:.0%} away from the pricing file's estimate: "
            "the pricing file's prices differ from the agreement's (update them) or usage was missed"
        ),
    )


def not_actual(asset: dg.AssetKey, reason: str) -> list[dg.AssetCheckResult]:
    """Both checks on a day that is not (newly) actual: nothing to compare, said so."""
    return [
        dg.AssetCheckResult(asset_key=asset, check_name=name, passed=True, metadata={"reason": reason})
        for name in (ACTUAL_MATCHES_EXPORT, ESTIMATE_VARIANCE)
    ]
