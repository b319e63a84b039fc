"""Asset check evaluations: each turns measured numbers into a pass/fail with those numbers attached.

The assets measure while they build (one pass over the data); these functions only judge, so each
rule and its threshold lives in one place and can be tested without running Dagster.
"""

import dagster as dg

from chargeback_pipeline.metadata import markdown_table
from chargeback_pipeline.reconciliation import BLOCK, NO_METRICS, WARN, describe

ATTRIBUTED = dg.AssetKey("attributed_requests")

UNIQUE_CORRELATION = "one_row_per_correlation_id"
SEQUENCE_ZERO_TOKENS = "tokens_only_from_sequence_zero"
GATEWAY_COMPLETE = "gateway_log_complete"
QUARANTINE_RATE = "quarantine_rate_within_limit"
DAILY_EQUALS_HOURLY = "daily_totals_equal_hourly_sum"
REPORT_MATCHES_ROLLUP = "report_files_match_rollup"
RECONCILES = "tokens_reconcile_with_azure_monitor"


def _percent(part: int, whole: int) -> float:
    return round(100.0 * part / whole, 3) if whole else 0.0


def uniqueness(asset: dg.AssetKey, rows: int, distinct_ids: int) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        asset_key=asset,
        check_name=UNIQUE_CORRELATION,
        passed=rows == distinct_ids,
        metadata={"rows": rows, "distinct_correlation_ids": distinct_ids, "extra_rows": rows - distinct_ids},
    )


def sequence_zero_tokens(
    asset: dg.AssetKey, later_chunks_with_tokens: int, chunked_requests: int
) -> dg.AssetCheckResult:
    # Tokens are only ever taken from SequenceNumber 0; this flags data where later chunks carry some,
    # which would mean the "later chunks carry zeros" assumption broke.
    return dg.AssetCheckResult(
        asset_key=asset,
        check_name=SEQUENCE_ZERO_TOKENS,
        passed=later_chunks_with_tokens == 0,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={"later_chunks_with_tokens": later_chunks_with_tokens, "chunked_requests": chunked_requests},
        description="Tokens on SequenceNumber > 0 are never counted; this flags records that carry any.",
    )


def gateway_completeness(asset: dg.AssetKey, per_hour: list[dict], max_percent: float) -> dg.AssetCheckResult:
    incomplete = [h for h in per_hour if h["core_llm_requests"] >= 20 and h["without_gateway_percent"] > max_percent]
    return dg.AssetCheckResult(
        asset_key=asset,
        check_name=GATEWAY_COMPLETE,
        passed=not incomplete,
        metadata={
            "hours_checked": len(per_hour),
            "incomplete_hours": [h["hour"] for h in incomplete],
            "max_percent_without_gateway_row": max((h["without_gateway_percent"] for h in per_hour), default=0.0),
            "threshold_percent": max_percent,
            "worst_hours": markdown_table(_worst(per_hour, "without_gateway_percent"), limit=5),
        },
    )


def quarantine_rate(asset: dg.AssetKey, quarantined: int, rows: int, by_reason: dict, max_percent: float):
    percent = _percent(quarantined, rows + quarantined)
    return dg.AssetCheckResult(
        asset_key=asset,
        check_name=QUARANTINE_RATE,
        passed=percent <= max_percent,
        metadata={
            "quarantined_rows": quarantined,
            "quarantined_percent": percent,
            "threshold_percent": max_percent,
            "by_reason": dg.MetadataValue.json(by_reason),
        },
    )


def daily_equals_hourly(asset: dg.AssetKey, daily: dict, hourly: dict) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        asset_key=asset,
        check_name=DAILY_EQUALS_HOURLY,
        passed=daily == hourly,
        metadata={f"daily_{k}": v for k, v in daily.items()} | {f"hourly_sum_{k}": v for k, v in hourly.items()},
    )


def report_matches_rollup(asset: dg.AssetKey, mismatches: list[str], days: int) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        asset_key=asset,
        check_name=REPORT_MATCHES_ROLLUP,
        passed=not mismatches,
        metadata={"days_checked": days, "mismatches": mismatches},
    )


def reconciliation(asset: dg.AssetKey, hours: list[dict], days: list[dict], blocking: bool) -> dg.AssetCheckResult:
    blocked = [describe(r, r["period"]) for r in days + hours if r["verdict"] == BLOCK]
    warned = [describe(r, r["period"]) for r in days + hours if r["verdict"] == WARN]
    missing = sorted({r["deployment_name"] for r in hours if r["verdict"] == NO_METRICS})
    if blocked:
        severity, passed, summary = dg.AssetCheckSeverity.ERROR, False, blocked[0]
    elif warned:
        severity, passed, summary = dg.AssetCheckSeverity.WARN, False, warned[0]
    elif missing:
        severity, passed, summary = dg.AssetCheckSeverity.WARN, False, f"no metrics for {', '.join(missing)}"
    else:
        severity, passed, summary = dg.AssetCheckSeverity.ERROR, True, "every deployment reconciles"
    per_day = [
        {k: r[k] for k in ("period", "deployment_name", "metric_tokens", "logged_tokens", "unattributed_tokens",
                           "unattributed_percent", "verdict")}
        for r in days
    ]  # fmt: skip
    return dg.AssetCheckResult(
        asset_key=asset,
        check_name=RECONCILES,
        passed=passed,
        severity=severity,
        description=summary,
        metadata={
            "blocking": blocking,
            "blocked": blocked[:20],
            "warnings": warned[:20],
            "deployments_without_metrics": missing,
            "metric_tokens": sum(r["metric_tokens"] for r in days),
            "logged_tokens": sum(r["logged_tokens"] for r in days),
            "unattributed_tokens": sum(r["unattributed_tokens"] for r in days),
            "per_deployment": _table(per_day),
        },
    )


def _worst(rows: list[dict], key: str):
    import pyarrow as pa

    return pa.Table.from_pylist(sorted(rows, key=lambda r: -r[key])) if rows else pa.table({})


def _table(rows: list[dict]):
    import pyarrow as pa

    return markdown_table(pa.Table.from_pylist(rows), limit=30) if rows else dg.MetadataValue.md("_no deployments_")
