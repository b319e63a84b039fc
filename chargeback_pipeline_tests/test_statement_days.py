"""The monthly statement of the month in progress: days that have not ended are still to come, never missing."""

import calendar
from datetime import UTC, datetime

import dagster as dg

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
