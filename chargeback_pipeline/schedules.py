"""The pipeline running itself: an hourly schedule that lands and attributes each hour once its logs are in
(and re-pulls recent hours for late rows), and a sensor that rolls a day up once its 24 hours are in and
again whenever one of them changed.

Hourly, `hourly_attribution` (cron "<lag> * * * *", UTC): at time T it requests ONE ranged run of every
hourly-partitioned asset over the hours [H - lookback, H], H being the last hour that ended at least
`lag_minutes` before T. The range reaches further back, at most `catchup_hours`, to the first hour that
has no successful materialization (a failed run, a stopped daemon), so the next tick catches up alone.

Late rows: hour h is first pulled at h + 1 h + lag, then re-pulled by each of the next `lookback_hours`
ticks. A row that reaches Log Analytics at most lookback + lag after its hour ends (6 h 20 min by
default) is billed; a later one stays unbilled until that hour is re-materialized by hand.

Daily, `daily_rollup` (sensor): for each recent day whose 24 hours are materialized for every hourly
asset the daily assets read, it fingerprints those hours' content (the `chargeback/content_hash` each
hourly asset records per partition) and requests a run of the daily-partitioned assets for that day,
unless the day was last rolled up from the same fingerprint. A re-pull that changed nothing leaves the
fingerprint as it was: no run starts and no file is touched.
"""

import hashlib
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta

import dagster as dg

from chargeback_pipeline.partitions import daily_partitions, hourly_partitions
from chargeback_pipeline.policies import SOURCE_RUN_TAGS

HOUR = timedelta(hours=1)
RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"
CONTENT_HASH_METADATA = "chargeback/content_hash"
ROLLUP_INPUTS_TAG = "chargeback/rollup_inputs"

DEFAULT_LAG_MINUTES = 20
DEFAULT_LOOKBACK_HOURS = 6
DEFAULT_CATCHUP_HOURS = 72
DEFAULT_ROLLUP_HORIZON_DAYS = DEFAULT_CATCHUP_HOURS // 24 + 2
IN_FLIGHT = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
]


def partitioned_keys(assets: Sequence, partitions_def: dg.PartitionsDefinition) -> list[dg.AssetKey]:
    """Keys of the assets with this partitioning: new assets join the schedules by being defined."""
    return [
        spec.key
        for a in assets
        if isinstance(a, dg.AssetsDefinition) and a.partitions_def == partitions_def
        for spec in a.specs
    ]


def hour_key(hour: datetime) -> str:
    return hour.astimezone(UTC).strftime(hourly_partitions.fmt)


def last_complete_hour(moment: datetime, lag_minutes: int) -> datetime:
    """Start of the latest hour that ended at least `lag_minutes` before `moment`."""
    settled = moment.astimezone(UTC) - timedelta(minutes=lag_minutes)
    return settled.replace(minute=0, second=0, microsecond=0) - HOUR


def _hours(first: datetime, end: datetime) -> list[datetime]:
    return [first + n * HOUR for n in range(int((end - first) / HOUR))]


def first_unmaterialized_hour(
    instance: dg.DagsterInstance, keys: Sequence[dg.AssetKey], hours: list[datetime]
) -> datetime | None:
    """The earliest of `hours` that some asset has no successful materialization of (never, or failed since)."""
    partition_keys = [hour_key(hour) for hour in hours]
    missing = set()
    for key in keys:
        status = instance.get_status_by_partition(key, partition_keys, hourly_partitions) or {}
        missing |= {pk for pk in partition_keys if status.get(pk) != dg.AssetPartitionStatus.MATERIALIZED}
    return next((hour for hour, pk in zip(hours, partition_keys, strict=True) if pk in missing), None)


def hourly_schedule(
    assets: Sequence,
    lag_minutes: int = DEFAULT_LAG_MINUTES,
    lookback_hours: int = DEFAULT_LOOKBACK_HOURS,
    catchup_hours: int = DEFAULT_CATCHUP_HOURS,
    default_status: dg.DefaultScheduleStatus = dg.DefaultScheduleStatus.RUNNING,
) -> dg.ScheduleDefinition:
    if lag_minutes < 0 or lookback_hours < 0 or catchup_hours < lookback_hours:
        raise ValueError("need lag_minutes >= 0 and 0 <= lookback_hours <= catchup_hours")
    keys = partitioned_keys(assets, hourly_partitions)
    start = hourly_partitions.start

    @dg.schedule(
        name="hourly_attribution",
        cron_schedule=f"{lag_minutes % 60} * * * *",
        execution_timezone="UTC",
        target=keys,
        default_status=default_status,
        description=(
            f"Lands and attributes each hour {lag_minutes} min after it ends, re-pulling the "
            f"{lookback_hours} hours before it for late rows and catching up hours missed in the last "
            f"{catchup_hours} h: one ranged run of all hourly assets."
        ),
    )
    def hourly_attribution(context: dg.ScheduleEvaluationContext):
        now = context.scheduled_execution_time or datetime.now(UTC)
        last = last_complete_hour(now, lag_minutes)
        if last < start:
            return dg.SkipReason(f"no hour has ended {lag_minutes} min before {now:%Y-%m-%d %H:%M} UTC")
        first = max(last - lookback_hours * HOUR, start)
        horizon = max(last - catchup_hours * HOUR, start)
        first = first_unmaterialized_hour(context.instance, keys, _hours(horizon, first)) or first
        return dg.RunRequest(tags={RANGE_START_TAG: hour_key(first), RANGE_END_TAG: hour_key(last), **SOURCE_RUN_TAGS})

    return hourly_attribution


def _latest_by_partition(
    instance: dg.DagsterInstance, key: dg.AssetKey, partition_keys: Sequence[str]
) -> dict[str, dg.EventLogRecord]:
    """The latest materialization record of each partition that has one."""
    found, wanted, cursor = {}, set(partition_keys), None
    while wanted:
        page = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=key, asset_partitions=sorted(wanted)), limit=1000, cursor=cursor
        )
        for record in page.records:  # newest first
            found.setdefault(record.partition_key, record)
        wanted -= found.keys()
        if not page.has_more:
            break
        cursor = page.cursor
    return found


def _content(record: dg.EventLogRecord) -> str:
    value = record.asset_materialization.metadata.get(CONTENT_HASH_METADATA)
    # Without a content hash every materialization counts as a change: correct, only less frugal.
    return str(value.value) if value is not None else f"event-{record.storage_id}"


def day_inputs(
    instance: dg.DagsterInstance, inputs: Sequence[dg.AssetKey], days: Sequence[date]
) -> dict[date, tuple[str, int]]:
    """(fingerprint of its hours' content, newest storage id among them) of each day whose hours are all in."""
    hours = {day: [f"{day:%Y-%m-%d}-{h:02d}:00" for h in range(24)] for day in days}
    latest = {key: _latest_by_partition(instance, key, [pk for pks in hours.values() for pk in pks]) for key in inputs}
    complete = {}
    for day, partition_keys in hours.items():
        records = [(key, pk, latest[key].get(pk)) for key in inputs for pk in partition_keys]
        if any(record is None for _, _, record in records):
            continue
        digest = hashlib.sha256()
        for key, pk, record in records:
            digest.update(f"{key.to_user_string()}|{pk}|{_content(record)}\n".encode())
        complete[day] = (digest.hexdigest()[:32], max(record.storage_id for _, _, record in records))
    return complete


def rolled_up_days(
    instance: dg.DagsterInstance, daily: Sequence[dg.AssetKey], inputs: dict[date, tuple[str, int]]
) -> set[date]:
    """Days every daily asset was last materialized from their current inputs.

    That is, by a run this sensor tagged with the current fingerprint, or by an untagged run (a UI or
    CLI backfill) recorded after the newest materialization of the day's hours.
    """
    day_keys = {day: f"{day:%Y-%m-%d}" for day in inputs}
    latest = {key: _latest_by_partition(instance, key, list(day_keys.values())) for key in daily}
    run_ids = sorted({record.run_id for records in latest.values() for record in records.values()})
    tags = {r.dagster_run.run_id: r.dagster_run.tags for r in instance.get_run_records(dg.RunsFilter(run_ids=run_ids))}

    def current(record: dg.EventLogRecord | None, fingerprint: str, newest_input: int) -> bool:
        if record is None:
            return False
        tagged = tags.get(record.run_id, {}).get(ROLLUP_INPUTS_TAG)
        return tagged == fingerprint or (tagged is None and record.storage_id > newest_input)

    return {
        day
        for day, (fingerprint, newest_input) in inputs.items()
        if all(current(latest[key].get(day_keys[day]), fingerprint, newest_input) for key in daily)
    }


def hourly_inputs_of_daily(assets: Sequence) -> list[dg.AssetKey]:
    """The hourly assets the daily assets read: a day is ready when all of them have its 24 hours."""
    hourly, daily = partitioned_keys(assets, hourly_partitions), partitioned_keys(assets, daily_partitions)
    specs = [s for a in assets if isinstance(a, dg.AssetsDefinition) for s in a.specs if s.key in daily]
    read = {dep.asset_key for spec in specs for dep in spec.deps}
    return [key for key in hourly if key in read] or hourly


def rollup_requests(
    instance: dg.DagsterInstance, inputs: Sequence[dg.AssetKey], daily: Sequence[dg.AssetKey], horizon_days: int
) -> list[dg.RunRequest] | dg.SkipReason:
    newest = max(
        (r for key in inputs for r in instance.fetch_materializations(key, limit=1).records),
        key=lambda r: r.storage_id,
        default=None,
    )
    if newest is None:
        return dg.SkipReason("no hour is materialized yet")
    anchor = hourly_partitions.time_window_for_partition_key(newest.partition_key).start.date()
    first_day = daily_partitions.start.date()
    days = [d for d in (anchor - timedelta(days=n) for n in reversed(range(horizon_days))) if d >= first_day]
    inputs_by_day = day_inputs(instance, inputs, days)
    done = rolled_up_days(instance, daily, inputs_by_day)
    stale = {day: fp for day, (fp, _) in sorted(inputs_by_day.items()) if day not in done}
    if not stale:
        return dg.SkipReason(f"every complete day of {days[0]}..{days[-1]} is rolled up from its current hours")
    in_flight = instance.get_run_records(
        dg.RunsFilter(tags={ROLLUP_INPUTS_TAG: list(stale.values())}, statuses=IN_FLIGHT)
    )
    running = {r.dagster_run.tags.get(ROLLUP_INPUTS_TAG) for r in in_flight}
    return [
        # The newest hourly storage id in the run key: a failed rollup is asked for again after the next
        # hourly run (run keys are never reused), not every few minutes.
        dg.RunRequest(
            run_key=f"{day}:{fp}:{newest.storage_id}", partition_key=f"{day:%Y-%m-%d}", tags={ROLLUP_INPUTS_TAG: fp}
        )
        for day, fp in stale.items()
        if fp not in running
    ] or dg.SkipReason("the rollups of the days that changed are already queued or running")


def daily_rollup_sensor(
    assets: Sequence,
    horizon_days: int = DEFAULT_ROLLUP_HORIZON_DAYS,
    minimum_interval_seconds: int = 300,
    default_status: dg.DefaultSensorStatus = dg.DefaultSensorStatus.RUNNING,
) -> dg.SensorDefinition:
    inputs, daily = hourly_inputs_of_daily(assets), partitioned_keys(assets, daily_partitions)

    @dg.sensor(
        name="daily_rollup",
        target=daily,
        minimum_interval_seconds=minimum_interval_seconds,
        default_status=default_status,
        description=(
            "Runs the daily assets for a day once all its hours are materialized, and again whenever the "
            f"content of one of its hours changed (late rows). Looks at the last {horizon_days} days."
        ),
    )
    def daily_rollup(context: dg.SensorEvaluationContext):
        return rollup_requests(context.instance, inputs, daily, horizon_days)

    return daily_rollup
