"""The chargeback by caller, worked by hand: caller lines split each origin charge exactly, and the pricing
file's caller rules charge subscription-less (Entra-only) calls to a product and tag a cost centre."""

import json
from decimal import Decimal

import pyarrow as pa
import pytest
from pydantic import ValidationError

from chargeback_pipeline.core.billing.allocation import allocate_day_with_origins
from chargeback_pipeline.core.billing.focus import to_focus
from chargeback_pipeline.core.billing.focus_1_3 import to_focus_1_3
from chargeback_pipeline.core.billing.pricing import parse_pricing
from chargeback_pipeline.core.billing.schemas import (
    DAILY_CHARGEBACK_CALLER_SCHEMA,
    DAILY_CHARGEBACK_SCHEMA,
    HOURLY_USAGE_SCHEMA,
    UNATTRIBUTED_SCHEMA,
)
from chargeback_pipeline.core.billing.statements import monthly_statement, statement_callers
from chargeback_pipeline_tests.test_allocation import DAY, PAYGO, PAYGO_DEPLOYMENT, PTU, TEN, make_pricing

APP = "0b5c6f1e-2d4a-4c59-9e21-7a3f8d6b1c01"


def usage(rows: list[tuple], with_callers: bool = True) -> pa.Table:
    """Rows of (product, subscription, caller, prompt, completion, backend)."""
    schema = HOURLY_USAGE_SCHEMA.insert(3, pa.field("caller_id", pa.string())) if with_callers else HOURLY_USAGE_SCHEMA
    deployment = {PTU: "gpt-41-ptu", PAYGO: PAYGO_DEPLOYMENT}
    return pa.Table.from_pylist(
        [
            {
                "usage_hour": TEN,
                "product_id": product,
                "subscription_id": subscription,
                "caller_id": caller,
                "model_name": "gpt-4.1",
                "deployment_name": deployment[backend],
                "backend_id": backend,
                "prompt_tokens": prompt,
                "completion_tokens": completion,
                "calls": 1,
            }
            for product, subscription, caller, prompt, completion, backend in rows
        ],
        schema=schema,
    )


ROWS = [
    ("alpha", "sub-a", "team-search", 300_000, 0, PTU),
    ("alpha", "sub-a", "unknown", 100_000, 0, PTU),
    ("unassigned", "unassigned", APP, 600_000, 0, PTU),
    ("unassigned", "unassigned", APP, 1_000, 500, PAYGO),
]


def pricing_with(callers: dict | None = None):
    base = make_pricing().model_dump(mode="json")
    return parse_pricing(base | ({"callers": callers} if callers else {}))


def test_caller_lines_split_the_hour_by_tokens_and_sum_to_the_product_lines():
    no_unattributed = UNATTRIBUTED_SCHEMA.empty_table()
    lines, origins = allocate_day_with_origins(usage(ROWS), no_unattributed, pricing_with(), DAY)
    plain, _ = allocate_day_with_origins(usage(ROWS, with_callers=False), no_unattributed, pricing_with(), DAY)

    assert lines.schema == DAILY_CHARGEBACK_CALLER_SCHEMA and plain.schema == DAILY_CHARGEBACK_SCHEMA
    assert "caller_id" in origins.column_names
    ptu = {(r["product_id"], r["caller_id"]): r["ptu_cost"] for r in lines.to_pylist() if r["cost_type"] == "ptu"}
    # The PTU hour costs $100.00 (50 PTU x $2.00), used 1,000,000 of 9,000,000 weighted tokens: proportional
    # policy, so the users pay it all by share: 300k/1M, 100k/1M, 600k/1M.
    assert ptu == {
        ("alpha", "team-search"): Decimal("30.00"),
        ("alpha", "unknown"): Decimal("10.00"),
        ("unassigned", APP): Decimal("60.00"),
    }
    per_product = {}
    for row in lines.to_pylist():
        per_product[row["product_id"]] = per_product.get(row["product_id"], Decimal(0)) + row["total_cost"]
    assert per_product == {r["product_id"]: r["total_cost"] for r in monthly_statement(plain, DAY).to_pylist()}
    by_caller = statement_callers(lines, DAY)
    assert sum(by_caller["total_cost"].to_pylist()) == sum(plain["total_cost"].to_pylist())


def test_a_caller_rule_charges_unassigned_calls_to_its_product_and_tags_its_cost_centre():
    rules = {APP: {"product": "search-platform", "cost_centre": "CC-4711"}, "team-search": {"cost_centre": "CC-1"}}
    pricing = pricing_with(rules)

    lines, origins = allocate_day_with_origins(usage(ROWS), UNATTRIBUTED_SCHEMA.empty_table(), pricing, DAY)

    products = {(r["product_id"], r["caller_id"]) for r in lines.to_pylist() if r["caller_id"]}
    assert products == {("alpha", "team-search"), ("alpha", "unknown"), ("search-platform", APP)}
    tags = [json.loads(row["AllocatedTags"]) for row in to_focus_1_3(origins, pricing).to_pylist()]
    assert {t.get("chargeback/cost-centre") for t in tags if t.get("chargeback/caller") == APP} == {"CC-4711"}
    # A rule moves only calls without a product: team-search's calls stay on alpha, tagged with its centre.
    focus = [json.loads(row["Tags"]) for row in to_focus(lines, pricing).to_pylist()]
    assert {t.get("chargeback/cost-centre") for t in focus if t.get("chargeback/caller") == "team-search"} == {"CC-1"}


@pytest.mark.parametrize(
    ("rule", "message"),
    [({}, "names a product, a cost_centre or both"), ({"product": "unattributed"}, "chargeback's own lines")],
)
def test_a_caller_rule_that_says_nothing_or_charges_a_reserved_line_is_refused(rule, message):
    with pytest.raises((ValidationError, ValueError), match=message):
        pricing_with({APP: rule})
