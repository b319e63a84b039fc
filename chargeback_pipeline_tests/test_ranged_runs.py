"""A ranged run over several days publishes the same bytes as one run per partition.

So a month backfilled in a handful of ranged runs (`chargeback backfill --days-per-run`, or a UI backfill,
which BackfillPolicy.single_run turns into the same range-tagged runs) gives the very reports the hourly
schedule produces hour by hour.
"""

import os
from datetime import date, timedelta

import dagster as dg
import pyarrow.parquet as pq

from chargeback_pipeline.cli.backfill import backfill
from chargeback_pipeline.defs.automation.fingerprints import CONTENT_HASH_METADATA
from chargeback_pipeline.sources.simulated.resource import SimulatedSourceResource
from chargeback_pipeline_tests.conftest import ASSETS, local_resources, pipeline
from chargeback_pipeline_tests.ticks import DAILY, HOURLY, MONTHLY

FIRST = date(2026, 1, 5)
DAYS = [FIRST + timedelta(days=n) for n in range(3)]


def report_files(root) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_a_three_day_ranged_run_equals_one_run_per_partition(tmp_path):
    # In-memory storage: this test compares files, and 75 runs on SQLite files would take twice as long.
    instance = dg.DagsterInstance.ephemeral()
    ranged = local_resources(tmp_path / "ranged", SimulatedSourceResource(simulated_requests_per_hour=200))
    single = local_resources(tmp_path / "single", SimulatedSourceResource(simulated_requests_per_hour=200))

    chunks = backfill(DAYS[0], DAYS[-1], pipeline(ranged), instance, days_per_run=3)
    for day in DAYS:
        for hour in range(24):
            run = dg.materialize(
                ASSETS, selection=HOURLY, partition_key=f"{day}-{hour:02d}:00", resources=single, instance=instance
            )
            assert run.success
    for day in DAYS:
        run = dg.materialize(ASSETS, selection=DAILY, partition_key=f"{day}", resources=single, instance=instance)
        assert run.success
    if MONTHLY:  # the statement of the month so far
        month = f"{FIRST:%Y-%m}-01"
        run = dg.materialize(ASSETS, selection=MONTHLY, partition_key=month, resources=single, instance=instance)
        assert run.success

    assert len(chunks) == 1  # the three days took one run for their hours, then one for their days (and month)
    published = report_files(tmp_path / "ranged" / "reports")
    assert {f"daily/usage_date={day}/product_usage.csv" for day in DAYS} <= published.keys()
    assert published == report_files(tmp_path / "single" / "reports")


def test_each_hour_of_a_ranged_run_carries_its_own_row_count(tmp_path):
    """A ranged run's event for an hour says that hour's rows (and content hash); the run's totals are in
    its log, on no hour's event."""
    instance = dg.DagsterInstance.ephemeral()
    resources = local_resources(tmp_path, SimulatedSourceResource(simulated_requests_per_hour=200))
    (chunk,) = backfill(DAYS[0], DAYS[0], pipeline(resources), instance, days_per_run=1)
    for node, dataset in (("raw_gateway_logs", "raw/gateway_logs"), ("attributed_requests", "attributed_requests")):
        events = [m for m in chunk.hourly.asset_materializations_for_node(node) if m.asset_key.to_user_string() == node]
        assert [m.partition for m in events] == [f"{DAYS[0]}-{hour:02d}:00" for hour in range(24)]
        for event in events:  # partition "2026-01-05-07:00" is the lake's "hour=2026-01-05T07"
            path = tmp_path / "lake" / dataset / f"hour={event.partition[:10]}T{event.partition[11:13]}/rows.parquet"
            assert event.metadata["dagster/row_count"].value == pq.ParquetFile(path).metadata.num_rows, path
            assert CONTENT_HASH_METADATA in event.metadata
        counts = [event.metadata["dagster/row_count"].value for event in events]
        assert len(set(counts)) > 1  # hours differ: no run total copied onto every hour
        assert not [name for event in events for name in event.metadata if name.startswith("run_")]

    # The backfill's runs plan each asset once (not once per hour), and leave the environment as it was.
    planned = instance.get_records_for_run(
        chunk.hourly.run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION_PLANNED
    ).records
    assert len(planned) == len(HOURLY)
    assert "DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS" not in os.environ
