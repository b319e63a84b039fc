"""The asset graph on the embedded default source equals the simulator's ground truth exactly."""

from datetime import UTC, date, datetime, timedelta

import pyarrow.parquet as pq

from chargeback_pipeline.cli.backfill import backfill
from chargeback_pipeline.core.reports import split_report
from chargeback_pipeline.sources.base import TimeWindow
from chargeback_pipeline.sources.simulated import SimulatedSource, SimulationProfile
from chargeback_pipeline.sources.simulated.resource import SimulatedSourceResource
from chargeback_pipeline.storage.schemas import RECONCILED_METRICS
from chargeback_pipeline_tests.conftest import local_resources, pipeline

DAY = date(2026, 11, 20)
REQUESTS_PER_HOUR = 600
# PTU deployments sized below this volume's busy minutes: some requests spill to the pay-as-you-go twins.
PTU_COUNTS = (("gpt-4.1", 10), ("gpt-4o", 15))
PROFILE = SimulationProfile(requests_per_hour=REQUESTS_PER_HOUR, ptu_counts=PTU_COUNTS)
SOURCE = SimulatedSourceResource(
    simulated_requests_per_hour=REQUESTS_PER_HOUR, simulated_ptu_counts=[f"{n}={c}" for n, c in PTU_COUNTS]
)


def test_published_report_equals_ground_truth(tmp_path, instance):
    resources = local_resources(tmp_path, SOURCE)

    backfill(DAY, DAY, pipeline(resources), instance)

    report = pq.read_table(tmp_path / "reports" / f"daily/usage_date={DAY}/product_usage.parquet")
    products, unattributed = split_report(report)
    simulator = SimulatedSource(PROFILE)
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


def test_report_lines_add_up_to_the_deployment_metrics(tmp_path, instance):
    resources = local_resources(tmp_path, SOURCE)

    backfill(DAY, DAY, pipeline(resources), instance)

    report = pq.read_table(tmp_path / "reports" / f"daily/usage_date={DAY}/product_usage.parquet")
    start = datetime(DAY.year, DAY.month, DAY.day, tzinfo=UTC)
    metrics = SimulatedSource(PROFILE).deployment_metrics(TimeWindow(start, start + timedelta(days=1))).rows
    tokens = [row["Total"] for row in metrics.to_pylist() if row["MetricName"] in RECONCILED_METRICS]
    assert sum(report["total_tokens"].to_pylist()) == sum(tokens)
