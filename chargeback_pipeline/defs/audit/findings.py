"""The audit's findings as one table a day (lake `chargeback_audit/usage_date=.../rows.parquet`): every
comparison its checks judged, the published value beside the audit's own expectation, so a failed check
can be read row by row after the run."""

from datetime import date
from decimal import Decimal

import pyarrow as pa

from chargeback_pipeline.defs.audit import checks

AMOUNT = pa.decimal128(38, 6)
FINDINGS_SCHEMA = pa.schema(
    [
        ("usage_date", pa.date32()),
        ("check_name", pa.string()),
        ("period", pa.string()),
        ("backend_id", pa.string()),
        ("deployment_name", pa.string()),
        ("product_id", pa.string()),
        ("measure", pa.string()),
        ("published", AMOUNT),
        ("expected", AMOUNT),
        ("agrees", pa.bool_()),
    ]
)
FINDINGS_DESCRIPTIONS = {
    "usage_date": "The audited day (UTC).",
    "check_name": "The audit check that judged this comparison.",
    "period": "The hour or day compared.",
    "backend_id": "The resource (APIM backend); empty where the comparison is per product.",
    "deployment_name": "The deployment; empty where the comparison is per product.",
    "product_id": "The product, where the comparison is per product.",
    "measure": "What is compared (prompt_tokens, cost_minor_units, unattributed_percent...).",
    "published": "The value the pipeline published or billed.",
    "expected": "The audit's own expectation (raw logs, pricing file): a bound, an equal value or a limit.",
    "agrees": "Whether the published value is what the expectation allows.",
}


def _amount(value) -> Decimal:
    return Decimal(str(value)).quantize(Decimal("0.000001"))


def findings(day: date, billed, not_billable, shares, error_percent: float, ptu, deviations) -> pa.Table:
    rows = []

    def add(check, period, backend, deployment, product, measure, published, expected, agrees):
        rows.append(
            {
                "usage_date": day,
                "check_name": check,
                "period": period,
                "backend_id": backend,
                "deployment_name": deployment,
                "product_id": product,
                "measure": measure,
                "published": _amount(published),
                "expected": _amount(expected),
                "agrees": bool(agrees),
            }
        )

    for row in billed:
        for part in ("prompt", "completion"):
            published, bound = row[f"billed_{part}_tokens"], row[f"successful_{part}_tokens"]
            add(
                checks.BILLED_WITHIN_SUCCESSFUL, row["period"], row["backend_id"], row["deployment_name"], "",
                f"{part}_tokens", published, bound, published <= bound,
            )  # fmt: skip
    for row in not_billable:
        for part in ("prompt", "completion"):
            published, expected = row[f"line_{part}_tokens"], row[f"expected_{part}_tokens"]
            add(
                checks.NOT_BILLABLE_MATCHES_RAW, str(day), row["backend_id"], row["deployment_name"], "",
                f"{part}_tokens", published, expected, published == expected,
            )  # fmt: skip
    for row in shares:
        add(
            checks.UNATTRIBUTED_SHARE, str(day), row["backend_id"], row["deployment_name"], "",
            "unattributed_percent", row["unattributed_percent"], error_percent,
            row["unattributed_percent"] <= error_percent,
        )  # fmt: skip
    for row in ptu:
        add(
            checks.PTU_COST_MATCHES_RATE, str(day), row["backend_id"], row["deployment_name"], "",
            "cost_minor_units", row["lines_minor_units"], row["expected_minor_units"],
            row["difference_minor_units"] == 0,
        )  # fmt: skip
    for row in deviations:
        add(
            checks.COSTS_WITHIN_PRICE_LIST, str(day), "", row["deployment_name"], row["product_id"], row["what"],
            row["published"], row["expected"], False,
        )  # fmt: skip
    return pa.Table.from_pylist(rows, schema=FINDINGS_SCHEMA)
