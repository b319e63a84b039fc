"""Materialize the pipeline for a range of days, in ranged runs recorded in a Dagster instance.

Used by `chargeback backfill` and by the tests. Hourly, daily and monthly assets cannot share one run, so
each chunk of days is three runs: the hourly assets over the chunk's hours, then the daily ones over its
days, then the monthly statements of the months those days fall in (recomputed from every published day).
A ranged run processes every partition of its range (BackfillPolicy.single_run), so a month takes a
handful of runs, not 720.
"""

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, timedelta

import dagster as dg

from chargeback_pipeline.core.periods import day_hours
from chargeback_pipeline.defs.partitions import (
    RANGE_END_TAG,
    RANGE_START_TAG,
    day_partition_key,
    hour_partition_key,
    month_partition_key,
)

# Dagster settings for the backfill's runs only (Dagster reads them from the environment when it creates a
# run and when it writes the run's events; an exported value wins):
# - one ASSET_MATERIALIZATION_PLANNED event per asset per ranged run instead of one per hour. The price:
#   the hours of a FAILED backfill run are not marked failed nor shown in progress (hours never
#   materialized stay missing, re-pulled ones keep their last materialization). A failed backfill
#   raises BackfillFailed; the schedule's own runs keep the per-hour events its catch-up relies on.
# - the materializations of a ranged output written in batches (one insert per 1,000 on PostgreSQL;
#   other storages write them one by one, as without it).
BACKFILL_DAGSTER_ENV = {"DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS": "1", "DAGSTER_EVENT_BATCH_SIZE": "1000"}
# Daily assets that publish, and so take the reconciliation override (publication_gate.PublishConfig).
GATED_ASSETS = ("product_usage_report", "daily_chargeback")


class BackfillFailed(RuntimeError):
    def __init__(self, message: str, result: dg.ExecuteInProcessResult):
        super().__init__(message)
        self.result = result


@dataclass(frozen=True)
class ChunkDone:
    first_day: date
    last_day: date
    hourly: dg.ExecuteInProcessResult
    daily: dg.ExecuteInProcessResult
    monthly: dg.ExecuteInProcessResult

    def check_evaluations(self) -> dict[str, dg.AssetCheckEvaluation]:
        """The chunk's asset check results by `asset:check` name."""
        return {
            f"{e.asset_key.to_user_string()}:{e.check_name}": e
            for result in (self.hourly, self.daily, self.monthly)
            for e in result.get_asset_check_evaluations()
        }


def day_chunks(first_day: date, last_day: date, days_per_run: int) -> Iterator[tuple[date, date]]:
    if last_day < first_day:
        raise ValueError(f"last day {last_day} is before first day {first_day}")
    if days_per_run < 1:
        raise ValueError(f"days per run must be at least 1, got {days_per_run}")
    start = first_day
    while start <= last_day:
        end = min(start + timedelta(days=days_per_run - 1), last_day)
        yield start, end
        start = end + timedelta(days=1)


def keys_partitioned_by(assets, kind: type[dg.PartitionsDefinition]) -> list[dg.AssetKey]:
    """The keys of the assets partitioned by hours, days or months (`dg.HourlyPartitionsDefinition`...)."""
    return [key for a in assets if isinstance(a.partitions_def, kind) for key in a.keys]


def _root_cause(error) -> str:
    """The asset's own error message, unwrapped from Dagster's step-execution error."""
    wrappers = ("Dagster", "RetryRequested")
    while error.cls_name and error.cls_name.startswith(wrappers) and error.cause is not None:
        error = error.cause
    return error.message.strip()


def _run(
    definitions: dg.Definitions,
    selection,
    instance,
    start_key: str,
    end_key: str,
    label: str,
    log_level: str,
    run_config=None,
) -> dg.ExecuteInProcessResult:
    result = dg.materialize(
        list(definitions.assets),
        selection=selection,
        run_config={"loggers": {"console": {"config": {"log_level": log_level}}}} | (run_config or {}),
        resources=definitions.resources,
        instance=instance,
        tags={RANGE_START_TAG: start_key, RANGE_END_TAG: end_key, "chargeback/launched_by": "chargeback-cli"},
        raise_on_error=False,
    )
    if not result.success:
        failures = [
            f"{event.step_key}: {_root_cause(event.step_failure_data.error)}"
            for event in result.all_events
            if event.is_step_failure and event.step_failure_data.error
        ]
        raise BackfillFailed(f"{label} failed (run {result.run_id}): " + "; ".join(failures), result)
    return result


@contextmanager
def _backfill_dagster_env() -> Iterator[None]:
    added = {name: value for name, value in BACKFILL_DAGSTER_ENV.items() if name not in os.environ}
    os.environ.update(added)
    try:
        yield
    finally:
        for name in added:
            os.environ.pop(name, None)


def backfill(
    first_day: date,
    last_day: date,
    definitions: dg.Definitions,
    instance: dg.DagsterInstance,
    days_per_run: int = 1,
    on_chunk: Callable[[ChunkDone], None] | None = None,
    log_level: str = "INFO",
    publish_override_reason: str | None = None,
) -> list[ChunkDone]:
    """Materialize FIRST_DAY..LAST_DAY of `definitions` (`definitions.build_definitions`); `log_level` is
    the console's (the run's event log keeps all).

    `publish_override_reason` publishes reports even where reconciliation blocks them, recording why.
    """
    daily_config = None
    if publish_override_reason:
        report_config = {"publish_despite_blocked_reconciliation": True, "override_reason": publish_override_reason}
        daily_config = {"ops": {asset: {"config": report_config} for asset in GATED_ASSETS}}
    assets = list(definitions.assets)
    hourly_keys = keys_partitioned_by(assets, dg.HourlyPartitionsDefinition)
    daily_keys = keys_partitioned_by(assets, dg.DailyPartitionsDefinition)
    monthly_keys = keys_partitioned_by(assets, dg.MonthlyPartitionsDefinition)
    done = []
    with _backfill_dagster_env():
        for start, end in day_chunks(first_day, last_day, days_per_run):
            hours = (hour_partition_key(day_hours(start)[0]), hour_partition_key(day_hours(end)[-1]))
            hourly = _run(definitions, hourly_keys, instance, *hours, f"hours of {start}..{end}", log_level)
            days = (day_partition_key(start), day_partition_key(end))
            daily = _run(definitions, daily_keys, instance, *days, f"days {start}..{end}", log_level, daily_config)
            months = (month_partition_key(start), month_partition_key(end))
            monthly = _run(definitions, monthly_keys, instance, *months, f"statements of {start}..{end}", log_level)
            chunk = ChunkDone(start, end, hourly, daily, monthly)
            done.append(chunk)
            if on_chunk:
                on_chunk(chunk)
    return done
