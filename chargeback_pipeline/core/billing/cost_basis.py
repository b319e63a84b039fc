"""A day's chargeback with its cost basis: `estimate` (priced from the pricing file, a list price) until
a Cost Management export covers the day, then `actual` (the export's costs, allocated). And the variance
between the two per product, the estimate's error made visible.

Published beside the estimate's `chargeback` files (which stay the pricing file's view, unchanged).
"""

from collections import defaultdict
from datetime import date
from decimal import Decimal
from enum import StrEnum

import pyarrow as pa

from chargeback_pipeline.core.billing.schemas import MONEY, QUANTITY
from chargeback_pipeline.core.periods import month_text
from chargeback_pipeline.storage.schemas import MONTH

LINE_KEY = ("product_id", "subscription_id", "model_name", "deployment_name", "backend_id", "cost_type")


class CostBasis(StrEnum):
    estimate = "estimate"  # the pricing file's prices times tokens: a list price, not the bill
    actual = "actual"  # the Cost Management export's EffectiveCost and BilledCost, allocated


BILLED_CHARGEBACK_SCHEMA = pa.schema(
    [
        ("usage_date", pa.date32()),
        ("product_id", pa.string()),
        ("subscription_id", pa.string()),
        ("model_name", pa.string()),
        ("deployment_name", pa.string()),
        ("backend_id", pa.string()),
        ("cost_type", pa.string()),
        ("cost_basis", pa.string()),  # a CostBasis value
        ("calls", pa.int64()),
        ("prompt_tokens", pa.int64()),
        ("completion_tokens", pa.int64()),
        ("estimated_cost", MONEY),  # the pricing file's (the `chargeback` file's total_cost)
        ("effective_cost", MONEY),  # amortized; on an estimate day the estimate
        ("billed_cost", MONEY),  # invoiced; on an estimate day the estimate
        ("currency", pa.string()),
        ("export_run_id", pa.string()),  # the export run an actual day comes from
    ]
)

COST_VARIANCE_SCHEMA = pa.schema(
    [
        ("usage_date", pa.date32()),
        ("product_id", pa.string()),
        ("estimated_cost", MONEY),
        ("effective_cost", MONEY),
        ("billed_cost", MONEY),
        ("variance", MONEY),  # effective - estimated
        ("variance_share", QUANTITY),  # variance / estimated; null when nothing was estimated
        ("currency", pa.string()),
    ]
)


def _key(row: dict) -> tuple:
    return tuple(row[column] for column in LINE_KEY)


def _order(key: tuple) -> tuple:
    return tuple(value or "" for value in key)


def estimate_lines(lines: pa.Table) -> pa.Table:
    """The estimate's chargeback lines as cost_basis `estimate`."""
    rows = [
        {
            **{column: line[column] for column in LINE_KEY},
            "usage_date": line["usage_date"],
            "cost_basis": CostBasis.estimate.value,
            "calls": line["calls"],
            "prompt_tokens": line["prompt_tokens"],
            "completion_tokens": line["completion_tokens"],
            "estimated_cost": line["total_cost"],
            "effective_cost": line["total_cost"],
            "billed_cost": line["total_cost"],
            "currency": line["currency"],
            "export_run_id": None,
        }
        for line in lines.to_pylist()
    ]
    return pa.Table.from_pylist(sorted(rows, key=lambda r: _order(_key(r))), schema=BILLED_CHARGEBACK_SCHEMA)


def actual_lines(lines: pa.Table, allocations: pa.Table, day: date, currency: str) -> pa.Table:
    """The day's lines with the export's costs summed from `allocations` (ACTUAL_ALLOCATION_SCHEMA):
    every estimate line (0 where the export charged it nothing) and every line only the export has
    (`unattributed` origins)."""
    merged: dict[tuple, dict] = {}
    for line in lines.to_pylist():
        merged[_key(line)] = {
            "calls": line["calls"],
            "prompt_tokens": line["prompt_tokens"],
            "completion_tokens": line["completion_tokens"],
            "estimated_cost": line["total_cost"],
            "effective_cost": Decimal(0),
            "billed_cost": Decimal(0),
        }
    runs = sorted({run for run in allocations["export_run_id"].to_pylist() if run})
    for share in allocations.to_pylist():
        line = merged.setdefault(
            _key(share),
            {
                "calls": 0,
                "prompt_tokens": 0,
                "completion_tokens": 0,
                "estimated_cost": Decimal(0),
                "effective_cost": Decimal(0),
                "billed_cost": Decimal(0),
            },
        )
        line["effective_cost"] += share["effective_cost"]
        line["billed_cost"] += share["billed_cost"]
    rows = [
        {
            **dict(zip(LINE_KEY, key, strict=True)),
            "usage_date": day,
            "cost_basis": CostBasis.actual.value,
            **values,
            "currency": currency,
            "export_run_id": ",".join(runs) or None,
        }
        for key, values in sorted(merged.items(), key=lambda item: _order(item[0]))
    ]
    return pa.Table.from_pylist(rows, schema=BILLED_CHARGEBACK_SCHEMA)


def variance_by_product(billed: pa.Table) -> pa.Table:
    """Per product of an actual day: estimate, actual, their difference and its share of the estimate."""
    totals: defaultdict[tuple, list[Decimal]] = defaultdict(lambda: [Decimal(0)] * 3)
    for row in billed.to_pylist():
        sums = totals[(row["usage_date"], row["product_id"], row["currency"])]
        sums[0] += row["estimated_cost"]
        sums[1] += row["effective_cost"]
        sums[2] += row["billed_cost"]
    rows = []
    for (day, product, currency), (estimated, effective, billed_cost) in sorted(totals.items()):
        variance = effective - estimated
        rows.append(
            {
                "usage_date": day,
                "product_id": product,
                "estimated_cost": estimated,
                "effective_cost": effective,
                "billed_cost": billed_cost,
                "variance": variance,
                "variance_share": (variance / estimated).quantize(Decimal("0.000001")) if estimated else None,
                "currency": currency,
            }
        )
    return pa.Table.from_pylist(rows, schema=COST_VARIANCE_SCHEMA)


BILLED_STATEMENT_SCHEMA = pa.schema(
    [
        ("month", MONTH),
        ("product_id", pa.string()),
        ("calls", pa.int64()),
        ("prompt_tokens", pa.int64()),
        ("completion_tokens", pa.int64()),
        ("estimated_cost", MONEY),
        ("effective_cost", MONEY),  # actual days: the export's amortized cost; estimate days: the estimate
        ("billed_cost", MONEY),  # actual days: invoiced; estimate days: the estimate
        ("actual_days", pa.int64()),  # days of the month this product's cost is actual on
        ("estimate_days", pa.int64()),  # days it is still an estimate on
        ("currency", pa.string()),
    ]
)


def billed_statement(month: date, billed_days: pa.Table) -> pa.Table:
    """Per product, the month's billed_chargeback lines summed exactly, with how many days are actual."""
    totals: dict[tuple[str, str], dict] = {}
    for row in billed_days.to_pylist():
        line = totals.setdefault(
            (row["product_id"], row["currency"]),
            {"calls": 0, "prompt_tokens": 0, "completion_tokens": 0, "estimated_cost": Decimal(0),
             "effective_cost": Decimal(0), "billed_cost": Decimal(0), "actual": set(), "estimate": set()},
        )  # fmt: skip
        for column in (
            "calls",
            "prompt_tokens",
            "completion_tokens",
            "estimated_cost",
            "effective_cost",
            "billed_cost",
        ):
            line[column] += row[column]
        line[row["cost_basis"]].add(row["usage_date"])
    rows = [
        {
            "month": month_text(month),
            "product_id": product,
            **{k: v for k, v in line.items() if k not in (CostBasis.actual, CostBasis.estimate)},
            "actual_days": len(line[CostBasis.actual]),
            "estimate_days": len(line[CostBasis.estimate]),
            "currency": currency,
        }
        for (product, currency), line in sorted(totals.items())
    ]
    return pa.Table.from_pylist(rows, schema=BILLED_STATEMENT_SCHEMA)
