"""The schedule and the sensor decide alone what runs when: an hour only after the ingestion lag, in one
ranged run with the lookback; missed hours caught up by the next tick; a day rolled up when its 24 hours
are in, and again only when one of them changed."""

from datetime import UTC, datetime, timedelta

import dagster as dg
import pyarrow.parquet as pq
import pytest

from chargeback_pipeline.defs.automation.fingerprints import CONTENT_HASH_METADATA
from chargeback_pipeline.defs.partitions import RANGE_END_TAG, RANGE_START_TAG
from chargeback_pipeline.defs.partitions import hour_partition_key as hour_key
from chargeback_pipeline.defs.source_limits import SOURCE_RUN_TAG_KEY
from chargeback_pipeline.sources.folder.resource import FolderSourceResource
from chargeback_pipeline_tests.conftest import CALENDAR, local_resources
from chargeback_pipeline_tests.folder_data import DAY, EXPECTED_REPORT, write_export
from chargeback_pipeline_tests.ticks import DAILY, HOURLY, Daemon, partitions_of

HOUR = timedelta(hours=1)
START = CALENDAR.hourly.start


def at(month: int, day: int, hour: int, minute: int = 20) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=UTC)


def requested(request: dg.RunRequest | None) -> tuple[str, str] | None:
    return (request.tags[RANGE_START_TAG], request.tags[RANGE_END_TAG]) if request else None


def report_materialized(instance, first: datetime, last: datetime, skip=(), content=None) -> None:
    """Record hours as materialized without running anything: what a schedule sees of earlier runs."""
    metadata = {CONTENT_HASH_METADATA: content} if content else {}
    hour = first
    while hour <= last:
        if hour not in skip:
            for key in HOURLY:
                event = dg.AssetMaterialization(key, partition=hour_key(hour), metadata=metadata)
                instance.report_runless_asset_event(event)
        hour += HOUR


def test_an_hour_is_requested_only_after_the_lag_in_one_run_with_the_lookback(instance):
    daemon = Daemon(instance, {}, catchup_hours=12)
    report_materialized(instance, at(3, 9, 20, 0), at(3, 10, 8, 0))

    before_lag = daemon.hourly_request(at(3, 10, 10, 19))
    after_lag = daemon.hourly_request(at(3, 10, 10, 20))

    assert requested(before_lag)[1] == "2026-03-10-08:00"  # hour 09 ended 19 minutes ago: not yet
    assert requested(after_lag) == ("2026-03-10-03:00", "2026-03-10-09:00")  # 09 and the 6 hours before it
    assert after_lag.tags[SOURCE_RUN_TAG_KEY] == "query"
    assert daemon.schedule.cron_schedule == "20 * * * *"
    assert daemon.schedule.execution_timezone == "UTC"


@pytest.mark.parametrize(
    ("hours_after_start", "minute", "expected_hours"),
    [(0, 20, None), (1, 19, None), (1, 20, (0, 0)), (4, 20, (0, 3)), (9, 20, (2, 8))],
)
def test_the_range_is_clipped_at_the_first_partition(instance, hours_after_start, minute, expected_hours):
    daemon = Daemon(instance, {}, catchup_hours=6)

    request = daemon.hourly_request(START + hours_after_start * HOUR + timedelta(minutes=minute))

    expected = expected_hours and tuple(hour_key(START + n * HOUR) for n in expected_hours)
    assert requested(request) == expected


def test_the_next_tick_reaches_back_to_hours_no_run_materialized(instance):
    daemon = Daemon(instance, {}, catchup_hours=24)
    gap, too_old = at(3, 9, 20, 0), at(3, 9, 8, 0)
    report_materialized(instance, at(3, 9, 6, 0), at(3, 10, 9, 0), skip={gap, too_old})

    request = daemon.hourly_request(at(3, 10, 10, 20))

    # 20:00 yesterday is within the 24 h catch-up: the one run starts there. 08:00 is older: a backfill's job.
    assert requested(request) == ("2026-03-09-20:00", "2026-03-10-09:00")


def report_rows(tmp_path) -> list[tuple]:
    table = pq.read_table(tmp_path / "reports" / f"daily/usage_date={DAY}/product_usage.parquet")
    columns = ["product_id", "subscription_id", "model_name", "deployment_name", "backend_id"]
    counts = ["prompt_tokens", "completion_tokens", "calls", "failed_calls"]
    return [tuple(row[c] for c in columns + counts) for row in table.to_pylist()]


def test_a_day_is_rolled_up_when_its_hours_are_in_and_again_only_if_one_changed(tmp_path, instance):
    export = write_export(tmp_path / "export")
    resources = local_resources(tmp_path, FolderSourceResource(source_folder=str(export)))
    daemon = Daemon(instance, resources, catchup_hours=22)

    assert requested(daemon.hourly_request(at(3, 10, 23))) == ("2026-03-10-00:00", "2026-03-10-22:00")
    tick = daemon.tick(at(3, 10, 23))  # hours 00..22 of the day: one hour short
    assert tick.hourly.success and tick.daily == [] and tick.monthly == []
    assert f"{DAY}: waiting for all its inputs" in skip_reason(daemon, "daily_rollup").split("; ")  # per day

    tick = daemon.tick(at(3, 11, 0))  # hour 23 lands: the day is complete
    assert tick.hourly.success and partitions_of(tick.daily) == [DAY] and tick.daily[0].success
    assert report_rows(tmp_path) == sorted(EXPECTED_REPORT)
    assert partitions_of(tick.monthly) == ["2026-03-01"] and tick.monthly[0].success  # the month so far

    tick = daemon.tick(at(3, 11, 1))  # re-pulls 18:00..00:00, which gained nothing
    assert tick.hourly.success and tick.daily == [] and tick.monthly == []
    assert f"{DAY}: rolled up from its current inputs" in skip_reason(daemon, "daily_rollup").split("; ")


def test_a_failed_run_is_caught_up_by_the_next_tick_after_the_fix(tmp_path, instance):
    export = write_export(tmp_path / "export")
    resources = local_resources(tmp_path, FolderSourceResource(source_folder=str(export)))
    daemon = Daemon(instance, resources, lookback_hours=2, catchup_hours=12)
    assert daemon.tick(at(3, 10, 13)).hourly.success
    broken = export / "ApiManagementGatewayLlmLog" / "broken.jsonl"
    broken.write_bytes(b'{"TimeGenerated": "2026-03-10T13:00:00Z"}\n{"TimeGen')

    for hour in (14, 15, 16, 17):  # four failed ticks: hour 13 falls out of the 2 h lookback
        tick = daemon.tick(at(3, 10, hour))
        assert not tick.hourly.success and tick.daily == []
    assert not (tmp_path / "reports").exists()  # nothing was published from a failed run
    broken.unlink()

    # Past the lookback (15:00) to the first hour whose last attempt failed: the 14:20 tick re-pulled 11..13.
    assert requested(daemon.hourly_request(at(3, 10, 18))) == ("2026-03-10-11:00", "2026-03-10-17:00")
    assert daemon.tick(at(3, 10, 18)).hourly.success

    tick = daemon.tick(at(3, 11, 0))  # five ticks missed (daemon down): caught up in one run
    assert partitions_of(tick.daily) == [DAY]
    statuses = instance.get_status_by_partition(
        HOURLY[0], [hour_key(at(3, 10, h, 0)) for h in range(24)], CALENDAR.hourly
    )
    assert set(statuses.values()) == {dg.AssetPartitionStatus.MATERIALIZED}
    assert report_rows(tmp_path) == sorted(EXPECTED_REPORT)


def test_a_rollup_that_keeps_failing_is_tried_three_times_then_waits_for_its_inputs_to_change(tmp_path, instance):
    export = write_export(tmp_path / "export")
    daemon = Daemon(instance, local_resources(tmp_path, FolderSourceResource(source_folder=str(export))))
    (sensor, _), *_ = daemon.sensors
    report_materialized(instance, at(3, 10, 0, 0), at(3, 10, 23, 0), content="v1")  # in the event log only

    for _ in range(3):  # the lake holds none of those hours: every rollup fails
        (request,) = daemon.sensor_requests(sensor)
        assert request.partition_key == DAY and not daemon.run(request, DAILY).success
    assert daemon.sensor_requests(sensor) == []  # no fourth attempt with the same inputs

    report_materialized(instance, at(3, 10, 5, 0), at(3, 10, 5, 0), content="v2")  # an hour changed
    assert [r.partition_key for r in daemon.sensor_requests(sensor)] == [DAY]


def skip_reason(daemon: Daemon, name: str) -> str:
    [sensor] = [sensor for sensor, _ in daemon.sensors if sensor.name == name]
    context = dg.build_sensor_context(instance=daemon.instance, definitions=daemon.definitions)
    return sensor.evaluate_tick(context).skip_message
