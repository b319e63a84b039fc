"""The publishing check: the published files, read back, hold what the rollup computed."""

import dagster as dg

REPORT_MATCHES_ROLLUP = "report_files_match_rollup"


def report_matches_rollup(asset: dg.AssetKey, mismatches: list[str], days: int) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        asset_key=asset,
        check_name=REPORT_MATCHES_ROLLUP,
        passed=not mismatches,
        metadata={"days_checked": days, "mismatches": mismatches},
    )
