"""The monthly statement: a calendar month's daily chargeback lines summed per product and currency.

Pure (no Dagster, no I/O). The statement sums the daily lines exactly, so its total is the month's PTU
cost plus pay-as-you-go cost of the days it was given, to the minor unit. `days_covered` says how many
days that was: a missing day is visible, never silently counted as zero.
"""

from datetime import date
from decimal import Decimal

import pyarrow as pa

from chargeback_pipeline.core.billing.schemas import MONEY, QUANTITY, CostType
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
    for row in sorted(lines, key=lambda r: (r["product_id"], r["currency"])):
        total = totals.setdefault((row["product_id"], row["currency"]), _empty_statement_row(start, row, days_covered))
        for column in ("calls", "prompt_tokens", "completion_tokens", "total_tokens", "paygo_cost", "total_cost"):
            total[column] += row[column]
        total["weighted_tokens"] += row["weighted_tokens"] or 0
        cost_column = "ptu_unused_cost" if row["cost_type"] == CostType.ptu_unused else "ptu_usage_cost"
        total[cost_column] += row["ptu_cost"]
    return pa.Table.from_pylist(list(totals.values()), schema=MONTHLY_STATEMENT_SCHEMA)


def _empty_statement_row(start: date, line: dict, days_covered: int) -> dict:
    zero = Decimal(0)
    return {
        "month_start": start,
        "product_id": line["product_id"],
        "currency": line["currency"],
        **dict.fromkeys(("calls", "prompt_tokens", "completion_tokens", "total_tokens"), 0),
        **dict.fromkeys(("weighted_tokens", "ptu_usage_cost", "ptu_unused_cost", "paygo_cost", "total_cost"), zero),
        "days_covered": days_covered,
        "days_in_month": (next_month_start(start) - start).days,
    }
