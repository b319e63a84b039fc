"""The asset graph on the embedded default source equals the simulator's ground truth exactly."""

from datetime import UTC, date, datetime, timedelta

import numpy as np
import pyarrow.parquet as pq

from chargeback_pipeline.cli.backfill import backfill
from chargeback_pipeline.core.reports import split_report
from chargeback_pipeline.sources.base import TimeWindow
from chargeback_pipeline.sources.simulated import SimulatedSource, SimulationProfile
from chargeback_pipeline.sources.simulated.deployments import DEPLOYMENT_LIST, DEPLOYMENT_NAME_SHARED
from chargeback_pipeline.sources.simulated.hours import US_PER_HOUR, epoch_us
from chargeback_pipeline.sources.simulated.metrics import llm_records_in_hour, tokens_by_deployment
from chargeback_pipeline.sources.simulated.resource import SimulatedSourceResource
from chargeback_pipeline_tests.conftest import local_resources, pipeline

DAY = date(2026, 11, 20)
REQUESTS_PER_HOUR = 600


def test_published_report_equals_ground_truth(tmp_path, instance):
    resources = local_resources(tmp_path, SimulatedSourceResource(simulated_requests_per_hour=REQUESTS_PER_HOUR))

    backfill(DAY, DAY, pipeline(resources), instance)

    report = pq.read_table(tmp_path / "reports" / f"daily/usage_date={DAY}/product_usage.parquet")
    products, unattributed = split_report(report)
    simulator = SimulatedSource(SimulationProfile(requests_per_hour=REQUESTS_PER_HOUR))
    truth = simulator.expected_daily_usage(DAY)
    assert products.num_rows > 20  # several products x subscriptions x models x backends
    assert products.to_pylist() == truth.to_pylist()
    assert products.schema == truth.schema
    start = datetime(DAY.year, DAY.month, DAY.day, tzinfo=UTC)
    expected = simulator.expected_unattributed_tokens(TimeWindow(start, start + timedelta(days=1)))
    assert unattributed == {
        (r["backend_id"], r["deployment_name"]): (r["prompt_tokens"], r["completion_tokens"])
        for r in expected.to_pylist()
        if r["prompt_tokens"] or r["completion_tokens"]
    }
    # The same deployment names on the PTU resource and the pay-as-you-go one it spills over to.
    assert {("aoai-ptu-eastus", "gpt-4.1"), ("aoai-paygo-eastus", "gpt-4.1")} <= set(unattributed)


def simulated_logged_not_billable(source: SimulatedSource, day: date) -> dict[tuple[str, str], tuple[int, int]]:
    """Per resource and deployment, from the simulator's own requests: tokens logged on `day` (by the LLM
    record's time) that no product is billed for on `day`: failed requests, records without a gateway row
    on a deployment name one resource serves (on a shared name they cannot be placed), requests billed on
    another day; minus requests billed on `day` whose record was logged on another day (the report does not
    clip: a midnight crossing the other way makes a count negative, so the report adds up to the metrics)."""
    start_us = epoch_us(datetime(day.year, day.month, day.day, tzinfo=UTC))
    hours = range(start_us, start_us + 24 * US_PER_HOUR, US_PER_HOUR)
    tokens = np.zeros((2, len(DEPLOYMENT_LIST)), dtype=np.int64)
    for hour_us in hours:
        for _, requests, in_hour in llm_records_in_hour(hour_us, source._requests):
            billed = requests.has_gateway_row & requests.is_success
            billed_today = billed & (requests.gateway_time_us // (24 * US_PER_HOUR) == start_us // (24 * US_PER_HOUR))
            placeable = requests.has_gateway_row | ~DEPLOYMENT_NAME_SHARED[requests.deployment]
            tokens += tokens_by_deployment(requests, in_hour & ~billed_today & placeable)
        requests = source._requests(hour_us)
        logged_elsewhere = (requests.llm_time_us < start_us) | (requests.llm_time_us >= start_us + 24 * US_PER_HOUR)
        billable = requests.has_gateway_row & requests.is_success & requests.has_llm_record
        tokens -= tokens_by_deployment(requests, billable & logged_elsewhere)
    return {
        deployment.key: (int(tokens[0, code]), int(tokens[1, code]))
        for code, deployment in enumerate(DEPLOYMENT_LIST)
        if tokens[0, code] or tokens[1, code]
    }


def test_logged_not_billable_lines_are_the_simulated_failed_and_orphan_records(tmp_path, instance):
    """Not a leftover (metered - billable - unattributed adds up whatever line a token lands on): each
    resource's `logged-not-billable` line equals what the simulator's requests say nobody is billed for."""
    resources = local_resources(tmp_path, SimulatedSourceResource(simulated_requests_per_hour=REQUESTS_PER_HOUR))

    backfill(DAY, DAY, pipeline(resources), instance)

    report = pq.read_table(tmp_path / "reports" / f"daily/usage_date={DAY}/product_usage.parquet").to_pylist()
    published = {
        (row["backend_id"], row["deployment_name"]): (row["prompt_tokens"], row["completion_tokens"])
        for row in report
        if row["product_id"] == "logged-not-billable" and (row["prompt_tokens"] or row["completion_tokens"])
    }
    expected = simulated_logged_not_billable(
        SimulatedSource(SimulationProfile(requests_per_hour=REQUESTS_PER_HOUR)), DAY
    )
    assert published == expected
    assert len(expected) >= 3  # failed requests on both resources, orphans on the embedding deployment
