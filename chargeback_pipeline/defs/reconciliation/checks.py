"""The reconciliation check: logged tokens against the deployments' own metrics, with the numbers."""

import dagster as dg

from chargeback_pipeline.core.reconciliation import BLOCK, NO_METRICS, WARN, describe
from chargeback_pipeline.defs.metadata import markdown_rows

RECONCILES = "tokens_reconcile_with_azure_monitor"
DAY_COLUMNS = (
    "period", "deployment_name", "metric_tokens", "logged_tokens", "unattributed_tokens", "unattributed_percent",
    "verdict",
)  # fmt: skip


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
            "per_deployment": markdown_rows(
                [{k: r[k] for k in DAY_COLUMNS} for r in days], limit=30, empty="_no deployments_"
            ),
        },
    )
