"""The published chargeback of a day: its lines with their cost basis. `estimate` (priced from the pricing
file, a list price) until a Cost Management export covers the day, then `actual` (the export's
EffectiveCost and BilledCost, allocated). One file, `chargeback.{parquet,csv}`, whatever the basis: the
monthly statement, the FOCUS export and its FinOps hubs copy all state the same numbers. And the variance
between the two per product, the estimate's error made visible.

Cost columns on a line: `ptu_cost` + `paygo_cost` = `total_cost`, the amortized cost (the export's
EffectiveCost when actual: what a product is charged back); `billed_cost` what is invoiced (BilledCost: a
PTU reservation's hours are invoiced on the reservation's purchase, so 0 here); `estimated_cost` the pricing
file's total, kept on actual days too.
"""

from collections import defaultdict
from datetime import date
from decimal import Decimal
from enum import StrEnum

import pyarrow as pa

from chargeback_pipeline.core.billing.schemas import (
    DAILY_CHARGEBACK_CALLER_SCHEMA,
    DAILY_CHARGEBACK_SCHEMA,
    MONEY,
    QUANTITY,
    CostType,
    with_caller_column,
)
from chargeback_pipeline.storage.schemas import CALLER_ID

LINE_KEY = ("product_id", "subscription_id", "model_name", "deployment_name", "backend_id", "cost_type")


class CostBasis(StrEnum):
    estimate = "estimate"  # the pricing file's prices times tokens: a list price, not the bill
    actual = "actual"  # the Cost Management export's EffectiveCost and BilledCost, allocated


# The columns the cost basis adds to the chargeback lines (DAILY_CHARGEBACK_SCHEMA) in the published file.
COST_BASIS_COLUMNS = [
    ("cost_basis", pa.string()),  # a CostBasis value
    ("estimated_cost", MONEY),  # the pricing file's total cost of the line
    ("billed_cost", MONEY),  # invoiced (BilledCost); on an estimate day the estimate
    ("export_run_id", pa.string()),  # the export run an actual day comes from
]
CHARGEBACK_SCHEMA = pa.schema([*DAILY_CHARGEBACK_SCHEMA, *COST_BASIS_COLUMNS])
CHARGEBACK_CALLER_SCHEMA = with_caller_column(CHARGEBACK_SCHEMA)

COST_VARIANCE_SCHEMA = pa.schema(
    [
        ("usage_date", pa.date32()),
        ("product_id", pa.string()),
        ("estimated_cost", MONEY),
        ("effective_cost", MONEY),
        ("billed_cost", MONEY),
        # Reserved PTU-hours no deployment used (a reservation's unused part, on no backend): the pricing
        # file prices deployments, not reservations, so no estimate could hold them; never a variance.
        ("unused_commitment_cost", MONEY),
        ("variance", MONEY),  # effective - unused commitment - estimated
        ("variance_share", QUANTITY),  # variance / estimated; null when nothing was estimated
        ("currency", pa.string()),
    ]
)


def _schema(lines: pa.Table) -> pa.Schema:
    return CHARGEBACK_CALLER_SCHEMA if CALLER_ID in lines.column_names else CHARGEBACK_SCHEMA


def line_key(row: dict) -> tuple:
    """A chargeback line's identity: LINE_KEY and its caller (None without callers)."""
    return (*(row[column] for column in LINE_KEY), row.get(CALLER_ID))


def _order(key: tuple) -> tuple:
    return tuple(value or "" for value in key)


def estimate_lines(lines: pa.Table) -> pa.Table:
    """The day's chargeback lines (DAILY_CHARGEBACK_SCHEMA) as the published chargeback, cost basis
    `estimate`: billed = estimated = the pricing file's total cost."""
    rows = [
        {
            **line,
            "cost_basis": CostBasis.estimate.value,
            "estimated_cost": line["total_cost"],
            "billed_cost": line["total_cost"],
            "export_run_id": None,
        }
        for line in lines.to_pylist()
    ]
    return pa.Table.from_pylist(sorted(rows, key=lambda r: _order(line_key(r))), schema=_schema(lines))


def actual_lines(lines: pa.Table, allocations: pa.Table, day: date, currency: str) -> pa.Table:
    """The day's lines with the export's costs summed from `allocations` (ACTUAL_ALLOCATION_SCHEMA): every
    estimate line (0 where the export charged it nothing) and every line only the export has
    (`unattributed` origins). Provisioned (PTU-hour) charges are the line's `ptu_cost`, token charges its
    `paygo_cost`, both amortized (EffectiveCost); BilledCost in `billed_cost`."""
    schema = _schema(lines)
    merged: dict[tuple, dict] = {}
    zero = Decimal(0)
    for line in lines.to_pylist():
        merged[line_key(line)] = {
            **line,
            "ptu_cost": zero,
            "paygo_cost": zero,
            "total_cost": zero,
            "estimated_cost": line["total_cost"],
            "billed_cost": zero,
        }
    runs = sorted({run for run in allocations["export_run_id"].to_pylist() if run})
    for share in allocations.to_pylist():
        line = merged.setdefault(
            line_key(share),
            {
                **{column: share.get(column) for column in LINE_KEY},
                CALLER_ID: share.get(CALLER_ID),
                "usage_date": day,
                **dict.fromkeys(("calls", "prompt_tokens", "completion_tokens", "total_tokens"), 0),
                "weighted_tokens": None,
                "output_token_weight": None,
                "rate_effective_from": None,
                **dict.fromkeys(("ptu_cost", "paygo_cost", "total_cost", "estimated_cost", "billed_cost"), zero),
            },
        )
        column = "ptu_cost" if share["meter_kind"] == "provisioned" else "paygo_cost"
        line[column] += share["effective_cost"]
        line["total_cost"] += share["effective_cost"]
        line["billed_cost"] += share["billed_cost"]
    rows = [
        {**values, "cost_basis": CostBasis.actual.value, "currency": currency, "export_run_id": ",".join(runs) or None}
        for _, values in sorted(merged.items(), key=lambda item: _order(item[0]))
    ]
    return pa.Table.from_pylist(rows, schema=schema)


def variance_by_product(chargeback: pa.Table) -> pa.Table:
    """Per product of an actual day: estimate, actual, their difference and its share of the estimate. A
    reservation's unused part is shown beside them, outside the difference: nothing estimates it."""
    totals: defaultdict[tuple, list[Decimal]] = defaultdict(lambda: [Decimal(0)] * 4)
    for row in chargeback.to_pylist():
        sums = totals[(row["usage_date"], row["product_id"], row["currency"])]
        sums[0] += row["estimated_cost"]
        sums[1] += row["total_cost"]
        sums[2] += row["billed_cost"]
        if is_unused_commitment(row):
            sums[3] += row["total_cost"]
    rows = []
    for (day, product, currency), (estimated, effective, billed_cost, unused) in sorted(totals.items()):
        variance = effective - unused - estimated
        rows.append(
            {
                "usage_date": day,
                "product_id": product,
                "estimated_cost": estimated,
                "effective_cost": effective,
                "billed_cost": billed_cost,
                "unused_commitment_cost": unused,
                "variance": variance,
                "variance_share": (variance / estimated).quantize(Decimal("0.000001")) if estimated else None,
                "currency": currency,
            }
        )
    return pa.Table.from_pylist(rows, schema=COST_VARIANCE_SCHEMA)


def is_unused_commitment(line: dict) -> bool:
    """A chargeback line of a reservation's unused part: unused PTU cost on no backend (the estimate's
    own unused capacity lines, under the `unallocated` or `fixed` policy, are on their PTU backend)."""
    return line["cost_type"] == CostType.ptu_unused.value and line["backend_id"] is None


def as_published(table: pa.Table, with_callers: bool = False) -> pa.Table:
    """A published chargeback read back, in CHARGEBACK_SCHEMA, or `with_callers` in CHARGEBACK_CALLER_SCHEMA
    (caller_id null on a day published without callers): a day published before the cost basis was kept is
    an estimate (billed = estimated = total)."""
    if with_callers and CALLER_ID not in table.column_names:
        table = table.append_column(pa.field(CALLER_ID, pa.string()), pa.nulls(table.num_rows, pa.string()))
    schema = CHARGEBACK_CALLER_SCHEMA if with_callers else CHARGEBACK_SCHEMA
    if "cost_basis" in table.column_names:
        return table.select(schema.names).cast(schema)
    daily = DAILY_CHARGEBACK_CALLER_SCHEMA if with_callers else DAILY_CHARGEBACK_SCHEMA
    return estimate_lines(table.select(daily.names).cast(daily)).select(schema.names)
