"""The published per-product usage report of a day: the daily rollup plus reconciliation lines, so that
the report's totals add up to what the deployments metered (and Azure bills)."""

import pyarrow as pa
import pyarrow.compute as pc

from chargeback_pipeline.core.billing.schemas import LOGGED_NOT_BILLABLE_PRODUCT, UNATTRIBUTED_PRODUCT
from chargeback_pipeline.core.callers import CALLER_ID

# metric - logged: traffic that bypassed APIM or was not logged.
UNATTRIBUTED = UNATTRIBUTED_PRODUCT
# logged - billable: failed requests' tokens, LLM records without a gateway row, and requests whose
# gateway row falls on the other side of midnight.
LOGGED_NOT_BILLABLE = LOGGED_NOT_BILLABLE_PRODUCT
RECONCILIATION_LINES = (UNATTRIBUTED, LOGGED_NOT_BILLABLE)
REPORT_KEY_COLUMNS = ["usage_date", "product_id", "subscription_id", "model_name", "deployment_name", "backend_id"]


def reconciliation_lines(usage: pa.Table, reconciliation: pa.Table) -> pa.Table:
    """Per backend (resource) and deployment with metrics: an `unattributed` and a `logged-not-billable`
    line of tokens, so the report adds up to each resource's metered tokens."""
    models_of: dict[tuple[str, str], set[str]] = {}
    for row in usage.to_pylist():
        models_of.setdefault((row["backend_id"], row["deployment_name"]), set()).add(row["model_name"])
    lines = []
    for row in reconciliation.filter(reconciliation["has_metrics"]).to_pylist():
        models = models_of.get((row["backend_id"], row["deployment_name"]), set())
        model = next(iter(models)) if len(models) == 1 else "unknown"
        splits = {
            UNATTRIBUTED: (row["unattributed_prompt_tokens"], row["unattributed_completion_tokens"]),
            LOGGED_NOT_BILLABLE: (
                row["logged_prompt_tokens"] - row["billable_prompt_tokens"],
                row["logged_completion_tokens"] - row["billable_completion_tokens"],
            ),
        }
        for product, (prompt, completion) in splits.items():
            if prompt or completion:
                lines.append(
                    {
                        "usage_date": row["usage_date"],
                        "product_id": product,
                        "subscription_id": product,
                        "model_name": model,
                        "deployment_name": row["deployment_name"],
                        "backend_id": row["backend_id"],
                        "prompt_tokens": prompt,
                        "completion_tokens": completion,
                        "total_tokens": prompt + completion,
                        "calls": 0,
                        "failed_calls": 0,
                        "first_seen": None,
                        "last_seen": None,
                    }
                )
    return pa.Table.from_pylist(lines, schema=usage.schema)


def build_report(usage: pa.Table, reconciliation: pa.Table) -> pa.Table:
    """With callers (core/callers.py) the usage has caller_id: a row per caller too (null on the lines)."""
    report = pa.concat_tables([usage, reconciliation_lines(usage, reconciliation)])
    caller = [CALLER_ID] if CALLER_ID in usage.column_names else []
    return report.sort_by([(k, "ascending") for k in [*REPORT_KEY_COLUMNS, *caller]])


def split_report(report: pa.Table) -> tuple[pa.Table, dict[str, tuple[int, int]]]:
    """A published report's product rows, and its `unattributed` (prompt, completion) tokens per
    (backend, deployment)."""
    is_line = pc.is_in(report["product_id"], value_set=pa.array(RECONCILIATION_LINES))
    unattributed = report.filter(pc.equal(report["product_id"], UNATTRIBUTED)).to_pylist()
    return report.filter(pc.invert(is_line)), {
        (r["backend_id"], r["deployment_name"]): (r["prompt_tokens"], r["completion_tokens"]) for r in unattributed
    }


def top_products(usage: pa.Table) -> pa.Table:
    """Tokens and calls per product, largest first (a preview for the UI)."""
    by_product = usage.group_by("product_id").aggregate([("total_tokens", "sum"), ("calls", "sum")])
    by_product = by_product.rename_columns(["product_id", "total_tokens", "calls"])
    return by_product.sort_by([("total_tokens", "descending"), ("product_id", "ascending")])
