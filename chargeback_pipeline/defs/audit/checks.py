"""The audit's checks: each judges the chargeback against an expectation the audit computed on its own
(`core.audit`: the landed raw rows with `dbt_like_sql/audit/`, the pricing file read and priced again),
and shows both numbers. README: Checks, "independent evidence".

ERROR fails `chargeback backfill` (exit 1, naming the check); `unattributed_share_within_limits` warns
above CHARGEBACK_AUDIT_UNATTRIBUTED_WARN_PERCENT and fails above _ERROR_PERCENT, naming the largest hours.
"""

import dagster as dg

from chargeback_pipeline.defs.metadata import markdown_rows

BILLED_WITHIN_SUCCESSFUL = "billed_within_successful_logged_tokens"
NOT_BILLABLE_MATCHES_RAW = "logged_not_billable_matches_raw_logs"
UNATTRIBUTED_SHARE = "unattributed_share_within_limits"
PTU_COST_MATCHES_RATE = "ptu_cost_is_deployed_hours_at_rate"
COSTS_WITHIN_PRICE_LIST = "costs_within_price_list"

DESCRIPTIONS = {
    BILLED_WITHIN_SUCCESSFUL: (
        "Per resource-deployment-hour (and per day in the published lines), billed tokens never exceed the "
        "tokens of the successful requests in the landed raw logs (audit SQL, each request once)."
    ),
    NOT_BILLABLE_MATCHES_RAW: (
        "Per pay-as-you-go resource-deployment-day, the logged-not-billable line equals the tokens of failed "
        "requests plus records with no gateway row (and requests across midnight), counted from the raw logs."
    ),
    UNATTRIBUTED_SHARE: (
        "Per resource-deployment-day, tokens charged to `unattributed` stay under the WARN and ERROR shares of "
        "the tokens the raw Azure Monitor rows metered; the largest hours are named."
    ),
    PTU_COST_MATCHES_RATE: (
        "Per PTU resource-deployment-day, the lines sum to deployed hours x that month's hourly rate, priced "
        "by the audit from the pricing file (the month's real length, rate changes, rounded as a month)."
    ),
    COSTS_WITHIN_PRICE_LIST: (
        "Per product, pay-as-you-go cost within one minor unit per line of its tokens at the file's prices; "
        "each pay-as-you-go deployment-day rounded once; weighted tokens at the file's output weight; no "
        "product's PTU cost above its deployments' day."
    ),
}


def billed_within_successful(asset: dg.AssetKey, compared: list[dict]) -> dg.AssetCheckResult:
    over = [row for row in compared if row["over"]]
    return dg.AssetCheckResult(
        asset_key=asset,
        check_name=BILLED_WITHIN_SUCCESSFUL,
        passed=not over,
        severity=dg.AssetCheckSeverity.ERROR,
        description=(
            f"{len(over)} resource-deployment periods bill more tokens than their successful requests logged "
            "(failed requests billed, a lost de-duplication, a shifted hour?)"
            if over
            else None
        ),
        metadata={
            "periods_compared": len(compared),
            "periods_over": len(over),
            "over": markdown_rows(over, limit=20, empty="_none_"),
        },
    )


def not_billable_matches_raw(asset: dg.AssetKey, rows: list[dict], unplaced_tokens: int) -> dg.AssetCheckResult:
    wrong = [
        row
        for row in rows
        if (row["line_prompt_tokens"], row["line_completion_tokens"])
        != (row["expected_prompt_tokens"], row["expected_completion_tokens"])
    ]
    return dg.AssetCheckResult(
        asset_key=asset,
        check_name=NOT_BILLABLE_MATCHES_RAW,
        passed=not wrong,
        severity=dg.AssetCheckSeverity.ERROR,
        description=(
            f"{len(wrong)} pay-as-you-go deployments charge logged-not-billable tokens that the raw logs do not "
            "show as failed or without a gateway row"
            if wrong
            else None
        ),
        metadata={
            "deployment_days_compared": len(rows),
            "deployment_days_off": len(wrong),
            "line_tokens": sum(r["line_prompt_tokens"] + r["line_completion_tokens"] for r in rows),
            "raw_logs_tokens": sum(r["expected_prompt_tokens"] + r["expected_completion_tokens"] for r in rows),
            "unplaced_no_gateway_row_tokens": unplaced_tokens,
            "per_deployment_day": markdown_rows(wrong or rows, limit=20, empty="_no pay-as-you-go deployments_"),
        },
    )


def unattributed_share(
    asset: dg.AssetKey, rows: list[dict], largest_hours: list[dict], warn_percent: float, error_percent: float
) -> dg.AssetCheckResult:
    errors = [r for r in rows if r["unattributed_percent"] > error_percent]
    warnings = [r for r in rows if warn_percent < r["unattributed_percent"] <= error_percent]
    worst = errors or warnings
    named = [f"{r['backend_id']}/{r['deployment_name']}: {r['unattributed_percent']:g} %" for r in worst]
    return dg.AssetCheckResult(
        asset_key=asset,
        check_name=UNATTRIBUTED_SHARE,
        passed=not worst,
        severity=dg.AssetCheckSeverity.ERROR if errors else dg.AssetCheckSeverity.WARN,
        description=(
            f"unattributed above {error_percent if errors else warn_percent:g} % of metered tokens: "
            + "; ".join(named[:5])
            if worst
            else None
        ),
        metadata={
            "warn_percent": warn_percent,
            "error_percent": error_percent,
            "deployment_days_judged": len(rows),
            "deployment_days_over": len(worst),
            "metered_tokens": sum(r["metered_tokens"] for r in rows),
            "unattributed_tokens": sum(r["unattributed_tokens"] for r in rows),
            "largest_hours": [
                f"{h['usage_hour']} {h['backend_id']}/{h['deployment_name']}: {h['unattributed_tokens']:,}"
                for h in largest_hours
            ],
            "per_deployment_day": markdown_rows(worst or rows, limit=20, empty="_no metered deployments_"),
        },
    )


def ptu_cost_matches_rate(asset: dg.AssetKey, rows: list[dict], currency: str) -> dg.AssetCheckResult:
    wrong = [r for r in rows if r["difference_minor_units"] != 0]
    return dg.AssetCheckResult(
        asset_key=asset,
        check_name=PTU_COST_MATCHES_RATE,
        passed=not wrong,
        severity=dg.AssetCheckSeverity.ERROR,
        description=(
            "PTU lines differ from deployed hours x the month's hourly rate of the pricing file: "
            + "; ".join(
                f"{r['backend_id']}/{r['deployment_name']}: lines {r['lines_minor_units']:g}, expected "
                f"{r['expected_minor_units']} minor units"
                for r in wrong[:3]
            )
            if wrong
            else None
        ),
        metadata={
            "currency": currency,
            "ptu_deployment_days_checked": len(rows),
            "ptu_deployment_days_off": len(wrong),
            "per_deployment_day": markdown_rows(wrong or rows, limit=20, empty="_no PTU deployments_"),
        },
    )


def costs_within_price_list(asset: dg.AssetKey, deviations: list[dict], judged: int) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        asset_key=asset,
        check_name=COSTS_WITHIN_PRICE_LIST,
        passed=not deviations,
        severity=dg.AssetCheckSeverity.ERROR,
        description=(
            f"{len(deviations)} amounts outside what the pricing file allows: "
            + "; ".join(sorted({d["what"] for d in deviations}))
            if deviations
            else None
        ),
        metadata={
            "products_judged": judged,
            "deviations": len(deviations),
            "examples": markdown_rows(deviations, limit=20, empty="_none_"),
        },
    )
