"""What a deployment metric value may be, checked like a log row's token counts before it is landed.

An Azure Monitor token metric (ProcessedPromptTokens, GeneratedTokens; Total over one hour, split by
deployment) counts tokens: a whole number, never negative. MAX_METRIC_TOTAL = 10^12 tokens a deployment
an hour: about 278 million tokens a second, orders of magnitude above any deployment's quota or PTU
throughput, so a larger value is a corrupt or sentinel one (2^63-1, 2^32-1...), not usage. Such a value
is rejected with its reason (landed in `rejected.parquet` beside the hour, counted, and named in the
`chargeback backfill` summary) instead of being summed: one 2^63-1 overflowed the day's 64-bit sums.
The PTU utilisation metric (a percent, rounded to a whole one) obeys the same bounds.
"""

import json

import pyarrow as pa
import pyarrow.compute as pc

MAX_METRIC_TOTAL = 10**12


def metric_problem(total) -> str | None:
    """Why a metric value cannot be landed, or None."""
    if total is None:
        return "Total is missing"
    try:
        number = float(total)
    except (TypeError, ValueError):
        return f"Total {total!r} is not a number"
    if number != number or number in (float("inf"), float("-inf")):
        return f"Total {total!r} is not a number"
    if not number.is_integer():
        return f"Total {total!r} is not a whole number of tokens"
    if number < 0:
        return f"Total {total!r} is negative"
    if number > MAX_METRIC_TOTAL:
        return f"Total {total!r} is above {MAX_METRIC_TOTAL:,} a deployment-hour"
    return None


def bounded(rows: pa.Table, rejected: pa.Table, source_table: str, time_column: str = "TimeStamp") -> tuple:
    """`rows` without the ones whose `Total` is out of bounds, and `rejected` with them (reason given)."""
    totals = rows["Total"]
    bad = pc.or_(pc.less(totals, 0), pc.greater(totals, MAX_METRIC_TOTAL))
    bad = pc.fill_null(bad, False)
    if not pc.any(bad).as_py():
        return rows, rejected
    moved = [
        {
            "source_table": source_table,
            "reason": metric_problem(row["Total"]),
            "origin": row.get("ResourceId") or "",
            "record": json.dumps({k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in row.items()}),
            "placed_at": row[time_column],
        }
        for row in rows.filter(bad).to_pylist()
    ]
    extra = pa.Table.from_pylist(moved, schema=rejected.schema)
    return rows.filter(pc.invert(bad)), pa.concat_tables([rejected, extra])
