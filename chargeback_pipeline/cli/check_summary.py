"""What `chargeback backfill` prints about asset checks that failed: one paragraph per failed check, with
the check, its asset and partitions, the numbers from its metadata and what to do.

Pure: it reads `AssetCheckEvaluation`s (and the partitions each judged) and returns text; the command
prints it and chooses the exit code (`has_errors`).

Budget and anomaly checks (`ALERT_CHECKS`) are business alerts, not broken data: a budget overrun fails its
check with severity ERROR so the UI shows it red, yet the data is right. They get their own paragraphs
(`alerts`) and never change the exit code.
"""

from collections.abc import Iterable, Mapping

import dagster as dg

from chargeback_pipeline.defs.anomalies.checks import NO_COST_ANOMALY
from chargeback_pipeline.defs.audit.checks import UNATTRIBUTED_SHARE
from chargeback_pipeline.defs.budgets.checks import BUDGETS_NAME_KNOWN_PRODUCTS, WITHIN_BUDGET
from chargeback_pipeline.defs.partition_checks import judged
from chargeback_pipeline.defs.reconciliation.checks import RECONCILES

# Metadata values longer than this are cut, lists and mappings show at most this many items: a paragraph,
# not a dump (every number stays in the run's event log and the UI).
MAX_TEXT = 160
MAX_ITEMS = 5
RERUN = "re-run `chargeback backfill` for these days"

# What to do, by check name (README: Checks). A check not listed gets DEFAULT_ADVICE.
ADVICE = {
    "one_row_per_correlation_id": (
        "some requests were attributed twice, so the day's tokens are overstated: do not send this day's "
        f"report on; {RERUN}, and report a bug with the run id if it persists."
    ),
    "tokens_only_from_sequence_zero": (
        "later chunks of chunked LLM records carried tokens; they were not counted (tokens come from "
        "SequenceNumber 0 only). Nothing to re-run; check whether APIM changed how it logs long messages."
    ),
    "gateway_log_complete": (
        "LLM requests of these hours have no gateway row, so their tokens are logged-not-billable instead of "
        "charged to a product: check that APIM's diagnostic setting still sends GatewayLogs and that "
        f"ingestion has caught up, then {RERUN}."
    ),
    "quarantine_rate_within_limit": (
        "too many rows could not be trusted (by_reason says why; the rows are in quarantined_records): fix "
        "the source data, or CHARGEBACK_DEPLOYMENTS for unknown deployments, then "
        f"{RERUN}; raise CHARGEBACK_QUARANTINE_MAX_PERCENT only if the rate is expected."
    ),
    "daily_totals_equal_hourly_sum": (
        f"the day's rollup differs from its 24 hours: {RERUN}, and report a bug with the run id if it persists."
    ),
    "tokens_reconcile_with_azure_monitor": (
        "the tokens APIM logged differ from what the deployments metered: look for traffic that bypassed APIM, "
        "lost LLM logs, or deployments without metrics (CHARGEBACK_OPENAI_RESOURCE_IDS). A blocked day is not "
        "published (the previous report stays); once the gap is explained, publish it with "
        '`chargeback backfill DAY --publish-despite-blocked-reconciliation "REASON"`; a warning publishes anyway.'
    ),
    "report_files_match_rollup": (
        "the published files, read back, differ from the rollup (another writer, or a storage fault): "
        f"{RERUN} before anyone reads them."
    ),
    "costs_add_up": (
        "the day's cost lines do not add up to the PTU cost the pricing file gives: do not send them on; check "
        f"CHARGEBACK_PRICING_FILE (rates, ptu_count, deployed_from/until), then {RERUN}."
    ),
    "no_negative_lines": (
        f"some cost lines are negative: do not send them on; check CHARGEBACK_PRICING_FILE, then {RERUN}."
    ),
    "focus_matches_chargeback": (
        f"the FOCUS export read back does not bill what the chargeback charges: {RERUN} before FinOps tools ingest it."
    ),
    WITHIN_BUDGET: (
        "tell the product's owner (the alert sensor posts it to CHARGEBACK_ALERT_WEBHOOK_URL once per threshold and "
        "month); raise the budget in CHARGEBACK_BUDGETS_FILE if the spend is intended."
    ),
    NO_COST_ANOMALY: (
        "ask the product's owner what changed that day (a new feature, a loop, a leaked key); the numbers compare "
        "the day with the median of the days before it."
    ),
    BUDGETS_NAME_KNOWN_PRODUCTS: (
        "check the spelling of these products in CHARGEBACK_BUDGETS_FILE against the chargeback's product_id; "
        "a product not live yet is fine."
    ),
    # The audit (defs/audit/checks.py): an expectation from the raw logs or the pricing file, not the engine.
    "billed_within_successful_logged_tokens": (
        "a product is billed tokens no successful request logged (failed requests billed, copies counted twice, "
        f"an hour's requests taken twice): do not send this day's bill on; report a bug with the run id, then {RERUN}."
    ),
    "logged_not_billable_matches_raw_logs": (
        "the logged-not-billable line is not what the raw logs show as failed or without a gateway row: tokens "
        f"were put on the wrong line; do not send this day's bill on; report a bug with the run id, then {RERUN}."
    ),
    UNATTRIBUTED_SHARE: (
        "much of what the deployments metered is charged to `unattributed`: look at the named hours for traffic "
        "that bypassed APIM or lost logs; raise CHARGEBACK_AUDIT_UNATTRIBUTED_ERROR_PERCENT only if it is expected."
    ),
    "ptu_cost_is_deployed_hours_at_rate": (
        "the PTU lines are not deployed hours x the month's rate of the pricing file (the audit prices them "
        f"itself): do not send them on; check CHARGEBACK_PRICING_FILE, report a bug with the run id, then {RERUN}."
    ),
    "costs_within_price_list": (
        "amounts outside what the pricing file allows (examples in the check's metadata): do not send them on; "
        f"report a bug with the run id, then {RERUN}."
    ),
    "statement_matches_daily_chargeback": (
        "the monthly statement does not equal its days' chargebacks: re-run the month's days with "
        "`chargeback backfill`."
    ),
}
# Numbers the UI shows beside a check result that its paragraph leaves out (the percent beside them says it).
CONTEXT_ONLY = frozenset({"rows_judged"})
DEFAULT_ADVICE = f"open the check in the Dagster UI (`make ui`) for its details, fix the cause, then {RERUN}."
# Checks whose ERROR the user may override (`--publish-despite-blocked-reconciliation REASON`): then they
# are still summarized, marked overridden, and no longer fail the command.
OVERRIDABLE = frozenset({RECONCILES, UNATTRIBUTED_SHARE})
# Business alerts: summarized apart (`alerts`), never failing the command.
ALERT_CHECKS = frozenset({WITHIN_BUDGET, NO_COST_ANOMALY})


def is_alert(evaluation: dg.AssetCheckEvaluation) -> bool:
    return evaluation.check_name in ALERT_CHECKS


def is_error(evaluation: dg.AssetCheckEvaluation) -> bool:
    """A failed check of severity ERROR."""
    return not evaluation.passed and evaluation.severity == dg.AssetCheckSeverity.ERROR


def fails_command(evaluation: dg.AssetCheckEvaluation, override_reason: str | None = None) -> bool:
    """A failed ERROR check the user did not override: the command must not exit 0."""
    overridden = override_reason and evaluation.check_name in OVERRIDABLE
    return is_error(evaluation) and not overridden and not is_alert(evaluation)


def check_name(evaluation: dg.AssetCheckEvaluation) -> str:
    return f"{evaluation.asset_key.to_user_string()}:{evaluation.check_name}"


def _cut(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= MAX_TEXT else text[: MAX_TEXT - 3] + "..."


def _show(value) -> str:
    if isinstance(value, Mapping):
        items = [f"{key}: {_show(item)}" for key, item in list(value.items())[:MAX_ITEMS]]
        more = f", +{len(value) - MAX_ITEMS} more" if len(value) > MAX_ITEMS else ""
        return "{" + ", ".join(items) + more + "}"
    if isinstance(value, list | tuple):
        items = [_show(item) for item in value[:MAX_ITEMS]]
        more = f", +{len(value) - MAX_ITEMS} more" if len(value) > MAX_ITEMS else ""
        return "[" + ", ".join(items) + more + "]"
    if isinstance(value, float):
        return f"{value:g}"
    return _cut(str(value))


def numbers(metadata: Mapping[str, dg.MetadataValue]) -> list[str]:
    """`name=value` of the check's metadata, in its order; tables (markdown), empty lists and the context
    numbers (`CONTEXT_ONLY`) are left to the UI."""
    shown = []
    for name, entry in metadata.items():
        value = entry.value
        if isinstance(entry, dg.MarkdownMetadataValue) or name.startswith("dagster/") or value in ([], {}, None):
            continue
        if name in CONTEXT_ONLY:
            continue
        shown.append(f"{name}={_show(value)}")
    return shown


def summarize(
    evaluation: dg.AssetCheckEvaluation, partitions: str | None = None, override_reason: str | None = None
) -> str:
    """One paragraph about a failed check: severity, check, asset, partitions, numbers, what to do."""
    where = evaluation.partition or partitions
    level = "WARNING"
    if is_error(evaluation):
        overridden = not fails_command(evaluation, override_reason)
        level = f"ERROR (overridden: {override_reason!r})" if overridden else "ERROR"
    text = f"{level}: check {evaluation.check_name} of asset {evaluation.asset_key.to_user_string()} failed"
    text += f" for partitions {where}" if where else ""
    text += f": {_cut(evaluation.description).rstrip('.')}." if evaluation.description else "."
    shown = numbers(evaluation.metadata)
    if shown:
        text += " Numbers: " + ", ".join(shown) + "."
    return text + " What to do: " + ADVICE.get(evaluation.check_name, DEFAULT_ADVICE)


def failed(
    checks: Iterable[tuple[dg.AssetCheckEvaluation, str | None]],
) -> list[tuple[dg.AssetCheckEvaluation, str | None]]:
    """The failed checks, errors first, otherwise in the order their runs judged them."""
    failures = [(e, partitions) for e, partitions in checks if not e.passed and not is_alert(e)]
    return sorted(failures, key=lambda pair: not is_error(pair[0]))


def summaries(
    checks: Iterable[tuple[dg.AssetCheckEvaluation, str | None]], override_reason: str | None = None
) -> list[str]:
    """A paragraph per failed check, errors first."""
    return [summarize(evaluation, partitions, override_reason) for evaluation, partitions in failed(checks)]


def command_failures(
    checks: Iterable[tuple[dg.AssetCheckEvaluation, str | None]], override_reason: str | None = None
) -> list[str]:
    """`asset:check` of every failed ERROR check not overridden: each makes the command exit 1."""
    return [check_name(evaluation) for evaluation, _ in checks if fails_command(evaluation, override_reason)]


def alerts(checks: Iterable[tuple[dg.AssetCheckEvaluation, str | None]]) -> list[str]:
    """A paragraph per failed budget or anomaly check (`ALERT_CHECKS`): over budget first."""
    raised = [(e, partitions) for e, partitions in checks if not e.passed and is_alert(e) and judged(e)]
    paragraphs = []
    for evaluation, partitions in sorted(raised, key=lambda pair: not is_error(pair[0])):
        level = "OVER BUDGET" if is_error(evaluation) else "ALERT"
        where = evaluation.partition or partitions
        text = f"{level}: {evaluation.asset_key.to_user_string()}:{evaluation.check_name}"
        text += f" for partitions {where}" if where else ""
        # The whole description: it names the product and its numbers (a few lines at most).
        text += f": {' '.join(evaluation.description.split()).rstrip('.')}." if evaluation.description else "."
        shown = numbers(evaluation.metadata)
        if shown:
            text += " Numbers: " + ", ".join(shown) + "."
        paragraphs.append(text + " What to do: " + ADVICE.get(evaluation.check_name, DEFAULT_ADVICE))
    return paragraphs


def has_errors(checks: Iterable[tuple[dg.AssetCheckEvaluation, str | None]]) -> bool:
    return any(is_error(evaluation) and not is_alert(evaluation) for evaluation, _ in checks)
