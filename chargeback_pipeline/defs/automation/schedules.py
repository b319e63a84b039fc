"""The hourly schedule: lands and attributes each hour once its logs are in, re-pulling recent hours for
late rows and catching up hours that failed or were missed.

`hourly_attribution` (cron "<lag> * * * *", UTC): at time T it requests ONE ranged run of
`1_hourly_attribution_job` (every hourly-partitioned asset) over the hours [H - lookback, H], H being the last
hour that ended at least `lag_minutes` before T. The range reaches further back, at most `catchup_hours`,
to the first hour that has no successful materialization (a failed run, a stopped daemon), so the next tick
catches up alone.

Late rows: hour h is first pulled at h + 1 h + lag, then re-pulled by each of the next `lookback_hours`
ticks. A row that reaches Log Analytics at most lookback + lag after its hour ends (6 h 20 min by
default) is billed; a later one stays unbilled until that hour is re-materialized by hand. The daily and
monthly steps are sensors (`sensors.py`): they follow what these runs changed.
"""

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import dagster as dg

from chargeback_pipeline.core.periods import HOUR
from chargeback_pipeline.defs.jobs import HOURLY_JOB, AssetJob, asset_job
from chargeback_pipeline.defs.partitions import RANGE_END_TAG, RANGE_START_TAG, hour_partition_key, partitioned_keys
from chargeback_pipeline.defs.source_limits import SOURCE_RUN_TAGS


def last_complete_hour(moment: datetime, lag_minutes: int) -> datetime:
    """Start of the latest hour that ended at least `lag_minutes` before `moment`."""
    settled = moment.astimezone(UTC) - timedelta(minutes=lag_minutes)
    return settled.replace(minute=0, second=0, microsecond=0) - HOUR


def _hours(first: datetime, end: datetime) -> list[datetime]:
    return [first + n * HOUR for n in range(int((end - first) / HOUR))]


def first_unmaterialized_hour(
    instance: dg.DagsterInstance,
    keys: Sequence[dg.AssetKey],
    hours: list[datetime],
    hourly_partitions: dg.PartitionsDefinition,
) -> datetime | None:
    """The earliest of `hours` that some asset has no successful materialization of (never, or failed since)."""
    partition_keys = [hour_partition_key(hour) for hour in hours]
    missing = set()
    for key in keys:
        status = instance.get_status_by_partition(key, partition_keys, hourly_partitions) or {}
        missing |= {pk for pk in partition_keys if status.get(pk) != dg.AssetPartitionStatus.MATERIALIZED}
    return next((hour for hour, pk in zip(hours, partition_keys, strict=True) if pk in missing), None)


def hourly_schedule(
    assets: Sequence,
    hourly_partitions: dg.TimeWindowPartitionsDefinition,
    lag_minutes: int,
    lookback_hours: int,
    catchup_hours: int,
    default_status: dg.DefaultScheduleStatus = dg.DefaultScheduleStatus.RUNNING,
    job: AssetJob | None = None,
) -> dg.ScheduleDefinition:
    """The schedule of `job` (`1_hourly_attribution_job`, built from `assets` when not given)."""
    if lag_minutes < 0 or lookback_hours < 0 or catchup_hours < lookback_hours:
        raise ValueError("need lag_minutes >= 0 and 0 <= lookback_hours <= catchup_hours")
    keys = partitioned_keys(assets, hourly_partitions)
    start = hourly_partitions.start

    @dg.schedule(
        name="hourly_attribution",
        cron_schedule=f"{lag_minutes % 60} * * * *",
        execution_timezone="UTC",
        job=job or asset_job(HOURLY_JOB, assets, hourly_partitions),
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
        first = first_unmaterialized_hour(context.instance, keys, _hours(horizon, first), hourly_partitions) or first
        return dg.RunRequest(
            tags={
                RANGE_START_TAG: hour_partition_key(first),
                RANGE_END_TAG: hour_partition_key(last),
                **SOURCE_RUN_TAGS,
            }
        )

    return hourly_attribution
