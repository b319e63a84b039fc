"""The reconciliation check: logged tokens against the deployments' own metrics, with the numbers.

Not a Dagster blocking check, on purpose (README "Checks"): the daily assets run a backfill's days in one
run, so a blocking ERROR on one day would stop every day's downstream assets, and with them the documented
override, which is run config of the publishing assets. Publication is gated in those assets instead
(`defs/publishing/gate.py`), and the check says so first: its spec's description opens with it (the UI
shows it right under its own "This is a non-blocking asset check."), and its metadata has `publication_gate`.
"""

import dagster as dg

from chargeback_pipeline.core.reconciliation import BLOCK, NO_METRICS, UNPLACED, WARN, describe, where
from chargeback_pipeline.defs.metadata import markdown_rows

RECONCILES = "tokens_reconcile_with_azure_monitor"
DAY_COLUMNS = (
    "period", "deployment_name", "backend_id", "metric_tokens", "logged_tokens", "unattributed_tokens",
    "unattributed_percent", "unplaced_tokens", "unexplained_percent", "verdict",
)  # fmt: skip


def token_totals(rows: list[dict]) -> dict[str, int]:
    """A period's token totals, as the asset and its check both show them under the same names: metric,
    logged and unattributed (= metric - logged) over the rows placed on a resource, and beside them the
    logged tokens with no known backend (inside those resources' unattributed tokens, not added again)."""
    placed = [r for r in rows if r["verdict"] != UNPLACED]
    return {
        "metric_tokens": sum(r["metric_tokens"] for r in placed),
        "logged_tokens": sum(r["logged_tokens"] for r in placed),
        "unattributed_tokens": sum(r["unattributed_tokens"] for r in placed),
        "logged_tokens_without_known_backend": sum(r["logged_tokens"] for r in rows if r["verdict"] == UNPLACED),
    }


# Where the day's publication is gated (the first thing the check's description and metadata say).
PUBLICATION_GATE = (
    "Gates publication, not as a Dagster blocking check: when it fails with severity error, product_usage_report "
    "and daily_chargeback hold this day's files back in their own gate (the run fails naming the deployment); "
    "override: run config publish_despite_blocked_reconciliation with an override_reason, or the CLI's "
    "--publish-despite-blocked-reconciliation. "
)
NOT_A_GATE = "Does not gate publication: the day's check (daily_reconciliation) does. "


def _gate(gates_publication: bool) -> dict:
    """The metadata entries that say where publication is gated."""
    return {
        "publication_gate": (PUBLICATION_GATE if gates_publication else NOT_A_GATE).strip(),
        "gates_publication": gates_publication,
    }


def not_reconciled(asset: dg.AssetKey, reason: str, gates_publication: bool) -> dg.AssetCheckResult:
    """The check of a pipeline that reads no metrics on purpose: a warning that says so, never a pass."""
    return dg.AssetCheckResult(
        asset_key=asset,
        check_name=RECONCILES,
        passed=False,
        severity=dg.AssetCheckSeverity.WARN,
        description=f"not reconciled: {reason}",
        metadata={**_gate(gates_publication), "reconciled": False, "reason": reason},
    )


def reconciliation(
    asset: dg.AssetKey, hours: list[dict], days: list[dict], gates_publication: bool
) -> dg.AssetCheckResult:
    """Not a Dagster blocking check (see the module's docstring): an ERROR here holds the day's published
    files back in the publishing assets' gate, which `publication_gate` in the metadata says."""
    blocked = [describe(r, r["period"]) for r in days + hours if r["verdict"] == BLOCK]
    warned = [describe(r, r["period"]) for r in days + hours if r["verdict"] == WARN]
    missing = sorted({where(r) for r in hours if r["verdict"] == NO_METRICS})
    periods = days or hours  # the totals and the table: per day, or (the hourly check) per hour
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
            **_gate(gates_publication),
            "blocked": blocked[:20],
            "warnings": warned[:20],
            "deployments_without_metrics": missing,
            **token_totals(periods),
            "per_deployment": markdown_rows(
                [{k: r[k] for k in DAY_COLUMNS} for r in periods], limit=30, empty="_no deployments_"
            ),
        },
    )
