"""The monthly statement: a calendar month's daily chargeback lines summed per product and currency.

Pure (no Dagster, no I/O). The statement sums the daily lines exactly, so its total is the month's PTU
cost plus pay-as-you-go cost of the days it was given, to the minor unit. `days_covered` says how many
days that was: a missing day is visible, never silently counted as zero.
"""

from datetime import date
from decimal import Decimal

import pyarrow as pa

from chargeback_pipeline.core.billing.schemas import CALLER_ID, MONEY, QUANTITY, CostType
from chargeback_pipeline.core.periods import month_start, next_month_start

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
        # The cost basis (core/billing/cost_basis.py): total_cost is amortized (the Cost Management export's
        # EffectiveCost on actual days), billed_cost invoiced, estimated_cost the pricing file's.
        ("billed_cost", MONEY),
        ("estimated_cost", MONEY),
        ("actual_days", pa.int32()),  # days of the product's month whose cost is the export's
        ("estimate_days", pa.int32()),  # days still priced from the pricing file
    ]
)


def monthly_statement(daily_lines: pa.Table, month: date | str) -> pa.Table:
    """Per product and currency: the month's tokens and costs (MONTHLY_STATEMENT_SCHEMA).

    `month` is any date in the month or "YYYY-MM"; lines of other months are ignored.
    """
    start = month_start(month)
    end = next_month_start(start)
    lines = [row for row in daily_lines.to_pylist() if start <= row["usage_date"] < end]
    days_covered = len({row["usage_date"] for row in lines})
    totals: dict[tuple[str, str], dict] = {}
    bases: dict[tuple[str, str], dict[str, set]] = {}
    for row in sorted(lines, key=lambda r: (r["product_id"], r["currency"])):
        key = (row["product_id"], row["currency"])
        total = totals.setdefault(key, _empty_statement_row(start, row, days_covered))
        for column in ("calls", "prompt_tokens", "completion_tokens", "total_tokens", "paygo_cost", "total_cost"):
            total[column] += row[column]
        total["weighted_tokens"] += row["weighted_tokens"] or 0
        cost_column = "ptu_unused_cost" if row["cost_type"] == CostType.ptu_unused else "ptu_usage_cost"
        total[cost_column] += row["ptu_cost"]
        # A chargeback published before the cost basis was kept is an estimate: billed = estimated = total.
        total["billed_cost"] += row.get("billed_cost", row["total_cost"])
        total["estimated_cost"] += row.get("estimated_cost", row["total_cost"])
        bases.setdefault(key, {"actual": set(), "estimate": set()})[row.get("cost_basis") or "estimate"].add(
            row["usage_date"]
        )
    for key, total in totals.items():
        total["actual_days"], total["estimate_days"] = len(bases[key]["actual"]), len(bases[key]["estimate"])
    return pa.Table.from_pylist(list(totals.values()), schema=MONTHLY_STATEMENT_SCHEMA)


def _empty_statement_row(start: date, line: dict, days_covered: int) -> dict:
    zero = Decimal(0)
    return {
        "month_start": start,
        "product_id": line["product_id"],
        "currency": line["currency"],
        **dict.fromkeys(("calls", "prompt_tokens", "completion_tokens", "total_tokens"), 0),
        **dict.fromkeys(
            ("weighted_tokens", "ptu_usage_cost", "ptu_unused_cost", "paygo_cost", "total_cost", "billed_cost"), zero
        ),
        "estimated_cost": zero,
        "days_covered": days_covered,
        "days_in_month": (next_month_start(start) - start).days,
    }


# The statement's figures by day and by model, for the HTML statement and its preview: exact sums of the
# same daily lines as the statement, so each product's days (or models) add up to its statement row.
_SUMMED = ("calls", "prompt_tokens", "completion_tokens", "total_tokens", "paygo_cost", "total_cost")
STATEMENT_DAYS_SCHEMA = pa.schema(
    [
        ("product_id", pa.string()),
        ("currency", pa.string()),
        ("usage_date", pa.date32()),
        *[(column, MONTHLY_STATEMENT_SCHEMA.field(column).type) for column in _SUMMED[:4]],
        ("weighted_tokens", QUANTITY),
        ("ptu_usage_cost", MONEY),
        ("ptu_unused_cost", MONEY),
        ("paygo_cost", MONEY),
        ("total_cost", MONEY),
    ]
)
STATEMENT_MODELS_SCHEMA = pa.schema(
    [
        ("product_id", pa.string()),
        ("currency", pa.string()),
        ("model_name", pa.string()),
        ("cost_type", pa.string()),  # a CostType value
        *[(column, MONTHLY_STATEMENT_SCHEMA.field(column).type) for column in _SUMMED[:4]],
        ("weighted_tokens", QUANTITY),
        ("total_cost", MONEY),
    ]
)


# Per product and caller (core/callers.py), when the month's lines carry callers: the statement's rows
# split below the product, summing exactly to each product's statement row.
STATEMENT_CALLERS_SCHEMA = pa.schema(
    [
        ("product_id", pa.string()),
        ("currency", pa.string()),
        (CALLER_ID, pa.string()),  # null on the chargeback's own lines (unattributed, unused capacity)
        *[(column, MONTHLY_STATEMENT_SCHEMA.field(column).type) for column in _SUMMED[:4]],
        ("weighted_tokens", QUANTITY),
        ("ptu_usage_cost", MONEY),
        ("ptu_unused_cost", MONEY),
        ("paygo_cost", MONEY),
        ("total_cost", MONEY),
    ]
)


def statement_callers(daily_lines: pa.Table, month: date | str) -> pa.Table:
    """Per product, currency and caller: the month's tokens and costs (STATEMENT_CALLERS_SCHEMA)."""
    return _sums(daily_lines, month, ("product_id", "currency", CALLER_ID), STATEMENT_CALLERS_SCHEMA)


def statement_days(daily_lines: pa.Table, month: date | str) -> pa.Table:
    """Per product, currency and day of the month: tokens and costs (STATEMENT_DAYS_SCHEMA)."""
    return _sums(daily_lines, month, ("product_id", "currency", "usage_date"), STATEMENT_DAYS_SCHEMA)


def statement_models(daily_lines: pa.Table, month: date | str) -> pa.Table:
    """Per product, currency, model and cost type: the month's tokens and cost (STATEMENT_MODELS_SCHEMA)."""
    return _sums(daily_lines, month, ("product_id", "currency", "model_name", "cost_type"), STATEMENT_MODELS_SCHEMA)


def _sums(daily_lines: pa.Table, month: date | str, group: tuple[str, ...], schema: pa.Schema) -> pa.Table:
    start = month_start(month)
    end = next_month_start(start)
    totals: dict[tuple, dict] = {}
    for row in daily_lines.to_pylist():
        if not start <= row["usage_date"] < end:
            continue
        key = tuple(row[column] for column in group)
        total = totals.setdefault(key, _empty_sum(dict(zip(group, key, strict=True)), schema))
        for column in _SUMMED:
            if column in total:
                total[column] += row[column]
        total["weighted_tokens"] += row["weighted_tokens"] or 0
        cost_column = "ptu_unused_cost" if row["cost_type"] == CostType.ptu_unused else "ptu_usage_cost"
        if cost_column in total:
            total[cost_column] += row["ptu_cost"]
    rows = [totals[key] for key in sorted(totals, key=lambda k: tuple("" if v is None else str(v) for v in k))]
    return pa.Table.from_pylist(rows, schema=schema)


def _empty_sum(keys: dict, schema: pa.Schema) -> dict:
    return keys | {
        field.name: Decimal(0) if pa.types.is_decimal(field.type) else 0 for field in schema if field.name not in keys
    }


# The daily reconciliation's verdicts (core.reconciliation's OK, TOO_SMALL, UNPLACED, NO_METRICS, WARN,
# BLOCK; core/billing does not import it) and the day status each gives a statement, worst last.
DAY_STATUSES = ("reconciled", "no metrics", "warning", "blocked")
VERDICT_STATUS = {
    "ok": "reconciled",
    "below minimum": "reconciled",
    "backend unknown": "reconciled",
    "no metrics": "no metrics",
    "warn": "warning",
    "block": "blocked",
}
NO_CHARGEBACK = "no chargeback"
NOT_RECONCILED = "not reconciled"
OVERRIDDEN = "published despite blocked reconciliation"


def day_status(
    day: date,
    has_chargeback: bool,
    reconciliation: pa.Table | None,
    override: dict | None = None,
    reconciliation_off: dict | None = None,
) -> dict:
    """How far a day of the statement can be trusted: its reconciliation's worst verdict over deployments
    (`reconciled`, `no metrics`, `warning`), `published despite blocked reconciliation` (with the
    override's reason), `not reconciled` (switched off, with why) or `no chargeback`; with the day's
    unattributed tokens and its worst unattributed percentage."""
    rows = reconciliation.to_pylist() if reconciliation is not None else []
    unattributed = sum(r[f"unattributed_{kind}_tokens"] or 0 for r in rows for kind in ("prompt", "completion"))
    percents = [abs(r["unattributed_percent"]) for r in rows if r["unattributed_percent"] is not None]
    worst = max((VERDICT_STATUS.get(r["day_verdict"], "blocked") for r in rows), key=DAY_STATUSES.index, default=None)
    note = ""
    if not has_chargeback:
        status = NO_CHARGEBACK
        note = "not published: not run yet, or held back by its reconciliation"
    elif reconciliation_off is not None:
        status, note = NOT_RECONCILED, str(reconciliation_off.get("reason") or "")
    elif override is not None:
        status = OVERRIDDEN
        note = f"{override.get('reason') or ''}: {'; '.join(override.get('blocked') or [])}".strip(": ")
    elif worst is None:
        status, note = NOT_RECONCILED, "no reconciliation of this day in the lake"
    else:
        status = worst
    return {
        "usage_date": day,
        "status": status,
        "unattributed_tokens": unattributed if rows else None,
        "worst_unattributed_percent": max(percents) if percents else None,
        "note": note,
    }
