"""The monthly statement of the month in progress: days that have not ended are still to come, never missing."""

import calendar
from datetime import UTC, date, datetime
from decimal import Decimal

import dagster as dg
import pyarrow as pa

from chargeback_pipeline.core.billing.cost_basis import CHARGEBACK_CALLER_SCHEMA, CHARGEBACK_SCHEMA, as_published
from chargeback_pipeline.core.billing.schemas import DAILY_CHARGEBACK_CALLER_SCHEMA
from chargeback_pipeline.sources.simulated.resource import SimulatedSourceResource
from chargeback_pipeline_tests.conftest import ASSETS, local_resources


def test_the_month_in_progress_lists_only_past_days_without_a_chargeback_as_missing(tmp_path, instance):
    today = datetime.now(UTC).date()
    month = today.replace(day=1)
    resources = local_resources(tmp_path, SimulatedSourceResource(simulated_requests_per_hour=0))

    result = dg.materialize(
        ASSETS, selection=["monthly_statement"], partition_key=str(month), resources=resources, instance=instance
    )

    [event] = result.asset_materializations_for_node("monthly_statement")
    metadata = {name: entry.value for name, entry in event.metadata.items()}
    past = [str(month.replace(day=n)) for n in range(1, today.day)]  # nothing is published: every past day
    assert metadata.get("days_missing", []) == past and metadata["days_missing_count"] == len(past)
    assert metadata["days_to_come"] == calendar.monthrange(today.year, today.month)[1] - len(past)


def _published_line(product: str, caller: str, cost: str) -> dict:
    return {
        "usage_date": date(2026, 3, 10),
        "product_id": product,
        "subscription_id": "sub-1",
        "caller_id": caller,
        "model_name": "gpt-4o",
        "deployment_name": "gpt-4o",
        "backend_id": "aoai-paygo",
        "cost_type": "paygo",
        "calls": 1,
        "prompt_tokens": 10,
        "completion_tokens": 5,
        "total_tokens": 15,
        "weighted_tokens": Decimal(15),
        "output_token_weight": Decimal(1),
        "ptu_cost": Decimal(0),
        "paygo_cost": Decimal(cost),
        "total_cost": Decimal(cost),
        "currency": "USD",
        "rate_effective_from": date(2026, 3, 1),
    }


def test_a_published_chargeback_read_back_with_callers_keeps_each_lines_caller():
    # Published before the cost basis was kept (no cost_basis column): read back as an estimate, which
    # orders the lines; each must keep its own caller. A day published without callers: caller_id null.
    lines = [_published_line("zeta", "app-z", "2.50"), _published_line("alpha", "app-a", "1.25")]
    legacy = pa.Table.from_pylist(lines, schema=DAILY_CHARGEBACK_CALLER_SCHEMA)
    without_callers = legacy.drop_columns(["caller_id"])

    read_back = as_published(legacy, with_callers=True)

    assert read_back.schema == CHARGEBACK_CALLER_SCHEMA
    assert {(r["product_id"], r["caller_id"], r["billed_cost"]) for r in read_back.to_pylist()} == {
        ("zeta", "app-z", Decimal("2.50")),
        ("alpha", "app-a", Decimal("1.25")),
    }
    assert as_published(without_callers, with_callers=True)["caller_id"].to_pylist() == [None, None]
    assert as_published(legacy).schema == CHARGEBACK_SCHEMA  # the statement's view: no caller column
