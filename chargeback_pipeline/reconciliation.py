"""Judging logged tokens against the deployments' own metrics, per deployment-hour and -day.

A deployment-hour (or -day) breaches a level when the share of its metric tokens that APIM did not
log exceeds the level's percent AND the gap exceeds the level's token amount. The gap is judged by
its size either way: more tokens logged than metered is as suspicious as fewer. Periods whose metrics
count fewer than `min_tokens` are not judged (a few stray tokens make huge percentages).
"""

from dataclasses import dataclass

import pyarrow as pa

OK, WARN, BLOCK, NO_METRICS, TOO_SMALL = "ok", "warn", "block", "no metrics", "below minimum"


@dataclass(frozen=True)
class ReconciliationPolicy:
    warn_percent: float = 2.0
    block_percent: float = 10.0
    warn_tokens: int = 0
    block_tokens: int = 0
    min_tokens: int = 10_000


def judge(rows: pa.Table, policy: ReconciliationPolicy) -> list[dict]:
    """Rows with metric_* and logged_* token columns, plus the gap, its percent and a verdict."""
    judged = []
    for row in rows.to_pylist():
        metric = row["metric_prompt_tokens"] + row["metric_completion_tokens"]
        logged = row["logged_prompt_tokens"] + row["logged_completion_tokens"]
        gap = metric - logged
        percent = round(100.0 * gap / metric, 3) if metric else None
        if not row["has_metrics"]:
            verdict = NO_METRICS
        elif metric < policy.min_tokens:
            verdict = TOO_SMALL
        elif abs(percent) > policy.block_percent and abs(gap) > policy.block_tokens:
            verdict = BLOCK
        elif abs(percent) > policy.warn_percent and abs(gap) > policy.warn_tokens:
            verdict = WARN
        else:
            verdict = OK
        judged.append(
            {
                **row,
                "metric_tokens": metric,
                "logged_tokens": logged,
                "unattributed_prompt_tokens": row["metric_prompt_tokens"] - row["logged_prompt_tokens"],
                "unattributed_completion_tokens": row["metric_completion_tokens"] - row["logged_completion_tokens"],
                "unattributed_tokens": gap,
                "unattributed_percent": percent,
                "verdict": verdict,
            }
        )
    return judged


def describe(row: dict, period: str) -> str:
    return (
        f"{row['deployment_name']} {period}: metrics {row['metric_tokens']:,} tokens, APIM logged "
        f"{row['logged_tokens']:,}, unattributed {row['unattributed_tokens']:,} ({row['unattributed_percent']}%)"
    )
