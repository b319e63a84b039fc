"""The rules of the day's publication decision (`day_publication`) and their overrides: its run config,
and the reasons a blocked reconciliation gives.

Two rules, each with an explicit override that is recorded:

- A day whose reconciliation is blocked is not published: its previously published files, if any, stay
  untouched, and the step fails naming the deployment-days. The override (run config
  `publish_despite_blocked_reconciliation` with an `override_reason`, or the CLI flag of the same name)
  publishes anyway and records that it did, beside the files (`reconciliation_override.json`) and in the
  run's metadata.
- A day never replaces its published outputs with smaller ones (`core.publication_decision`): a lost
  product, fewer rows of real products, or a smaller total is what lost source data looks like. Such a
  day is held like a blocked one. The override (run config `publish_despite_shrink: true` with a
  non-empty `override_reason`) publishes the whole day anyway and appends the numbers, reason and run id
  to the day's publication manifest (`overrides`), kept across later runs as the day's audit trail.
"""

import dagster as dg
import pyarrow as pa

from chargeback_pipeline.core.reconciliation import BLOCK, where


class PublishConfig(dg.Config):
    publish_despite_blocked_reconciliation: bool = False
    # Replace a day's published file even with fewer product rows or a smaller total (needs override_reason).
    publish_despite_shrink: bool = False
    override_reason: str = ""


def blocked_reasons(reconciliation: pa.Table) -> list[str]:
    """One message per blocked resource-deployment-day, naming it, the worst hour and the numbers."""
    reasons = []
    for r in reconciliation.to_pylist():
        if BLOCK not in (r["day_verdict"], r["worst_hour_verdict"]):
            continue
        metric = r["metric_prompt_tokens"] + r["metric_completion_tokens"]
        logged = r["logged_prompt_tokens"] + r["logged_completion_tokens"]
        hour_gap = r["worst_hour_metric_tokens"] - r["worst_hour_logged_tokens"]
        reasons.append(
            f"{where(r)} on {r['usage_date']}: metrics {metric:,} tokens, APIM logged {logged:,}, "
            f"unattributed {metric - logged:,} ({r['unattributed_percent']}%, {r['day_verdict']}); worst hour "
            f"{r['worst_hour']:%H:00}: metrics {r['worst_hour_metric_tokens']:,}, logged "
            f"{r['worst_hour_logged_tokens']:,}, unattributed {hour_gap:,} "
            f"({r['worst_hour_unattributed_percent']}%, {r['worst_hour_verdict']})"
        )
    return reasons
