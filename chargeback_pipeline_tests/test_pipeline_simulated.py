"""The asset graph on the embedded default source equals the simulator's ground truth exactly."""

from datetime import date

import pyarrow.parquet as pq

from chargeback_pipeline.resources import LogSourceResource
from chargeback_pipeline.runner import backfill
from chargeback_pipeline.sources.simulated import SimulatedSource, SimulationProfile
from chargeback_pipeline_tests.conftest import local_resources

DAY = date(2026, 11, 20)
REQUESTS_PER_HOUR = 600


def test_published_report_equals_ground_truth(tmp_path, instance):
    resources = local_resources(
        tmp_path, LogSourceResource(kind="simulated", simulated_requests_per_hour=REQUESTS_PER_HOUR)
    )

    backfill(DAY, DAY, resources, instance)

    published = pq.read_table(tmp_path / "reports" / f"daily/usage_date={DAY}/product_usage.parquet")
    truth = SimulatedSource(SimulationProfile(requests_per_hour=REQUESTS_PER_HOUR)).expected_daily_usage(DAY)
    assert published.num_rows > 20  # several products x subscriptions x models x backends
    assert published.to_pylist() == truth.to_pylist()
    assert published.schema == truth.schema
