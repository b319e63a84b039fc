"""A simulated week run by the schedule and the sensor alone, with their production settings: every day's
report is published without a human and equals the simulator's ground truth."""

import io
from datetime import UTC, date, datetime, time, timedelta

import pyarrow.parquet as pq
import pytest

from chargeback_pipeline.core.reports import split_report
from chargeback_pipeline.sources.simulated import SimulatedSource, SimulationProfile
from chargeback_pipeline.sources.simulated.resource import SimulatedSourceResource
from chargeback_pipeline.storage.keys import product_usage_report_key
from chargeback_pipeline_tests.conftest import CALENDAR, local_resources
from chargeback_pipeline_tests.ticks import Daemon, partitions_of

REQUESTS_PER_HOUR = 200
HOUR = timedelta(hours=1)


@pytest.mark.slow
def test_a_week_runs_from_the_schedules_alone(tmp_path, instance):
    resources = local_resources(tmp_path, SimulatedSourceResource(simulated_requests_per_hour=REQUESTS_PER_HOUR))
    daemon = Daemon(instance, resources)  # lag 20 min, lookback 6 h, catch-up 72 h
    start = CALENDAR.hourly.start
    week = [start.date() + timedelta(days=n) for n in range(7)]
    published: dict[date, object] = {}

    # The daemon evaluates the schedule at every 7th cron tick, as if it were down six hours out of seven:
    # each tick's 7-hour range (the hour and its lookback) covers the hours in between, so every hour is
    # computed once. Evaluating every tick gives the same reports for seven times the work.
    moment = start + 7 * HOUR + timedelta(minutes=20)
    while moment <= start + 7 * 24 * HOUR + timedelta(minutes=20):
        runs = daemon.tick(moment)
        assert runs.hourly.success and all(run.success for run in runs.daily + runs.monthly), f"tick {moment}"
        for day in partitions_of(runs.daily):
            published.setdefault(date.fromisoformat(day), moment)
        moment += 7 * HOUR

    assert sorted(published) == week
    for day, when in published.items():  # at the first tick after its last hour was in
        assert when - datetime.combine(day + timedelta(days=1), time(), UTC) < 7 * HOUR
    truth = SimulatedSource(
        SimulationProfile(requests_per_hour=REQUESTS_PER_HOUR, seed=resources["source"].simulated_seed)
    )
    store = resources["reports"].store()
    for day in week:
        report = pq.read_table(io.BytesIO(store.read_bytes(product_usage_report_key(day, "parquet"))))
        products, _ = split_report(report)
        assert products.equals(truth.expected_daily_usage(day)), day
