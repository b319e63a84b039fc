"""The attribution's checks: each turns numbers the assets measured while they built into a pass/fail
with those numbers attached (the rule and its threshold live here once; testable without Dagster runs).
The assets judge each partition on its own numbers (an hour, a day: `defs/partition_checks.py`)."""

import dagster as dg

from chargeback_pipeline.defs.metadata import markdown_rows

UNIQUE_CORRELATION = "one_row_per_correlation_id"
SEQUENCE_ZERO_TOKENS = "tokens_only_from_sequence_zero"
GATEWAY_COMPLETE = "gateway_log_complete"
QUARANTINE_RATE = "quarantine_rate_within_limit"
DAILY_EQUALS_HOURLY = "daily_totals_equal_hourly_sum"


def percent(part: int, whole: int) -> float:
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


def gateway_completeness(
    asset: dg.AssetKey, per_hour: list[dict], max_percent: float, min_requests: int
) -> dg.AssetCheckResult:
    """Hours with at least `min_requests` LLM requests in their core, of which more than `max_percent`
    have no gateway row, are incomplete."""
    incomplete = [
        h for h in per_hour if h["core_llm_requests"] >= min_requests and h["without_gateway_percent"] > max_percent
    ]
    worst = sorted(per_hour, key=lambda h: -h["without_gateway_percent"])
    return dg.AssetCheckResult(
        asset_key=asset,
        check_name=GATEWAY_COMPLETE,
        passed=not incomplete,
        metadata={
            "hours_checked": len(per_hour),
            "incomplete_hours": [h["hour"] for h in incomplete],
            "max_percent_without_gateway_row": max((h["without_gateway_percent"] for h in per_hour), default=0.0),
            "threshold_percent": max_percent,
            "minimum_llm_requests_judged": min_requests,
            "worst_hours": markdown_rows(worst, limit=5),
        },
    )


def quarantine_rate(asset: dg.AssetKey, quarantined: int, rows: int, by_reason: dict, max_percent: float):
    share = percent(quarantined, rows + quarantined)
    return dg.AssetCheckResult(
        asset_key=asset,
        check_name=QUARANTINE_RATE,
        passed=share <= max_percent,
        metadata={
            "quarantined_rows": quarantined,
            "rows_judged": rows + quarantined,
            "quarantined_percent": share,
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
