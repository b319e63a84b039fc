"""Materialize the pipeline for a range of days, in ranged runs recorded in a Dagster instance.

Used by `chargeback backfill` and by the tests. Hourly, daily and monthly assets cannot share one run, so
each chunk of days is three runs of the pipeline's named jobs (`defs/jobs.py`), the same ones the schedule
and the sensors run: `1_hourly_attribution_job` over the chunk's hours, then `2_daily_rollup_job` over its
days, then `3_monthly_statement_job` over the months those days fall in (recomputed from every published
day). A ranged run processes every partition of its range (BackfillPolicy.single_run), so a month takes a
handful of runs, not 720.

The daily and monthly runs carry the `chargeback/rollup_inputs` tag the rollup sensors would put on them
(the fingerprint of their inputs, computed by the sensors' own code after the run before), so the
sensors do not roll those days and months up again while their inputs' content stays the same.

Checks are judged per partition (one evaluation per hour or day); `ChunkDone.check_evaluations` and
`checks_with_partitions` fold each run's evaluations of a check into one (`partition_checks.run_level`)
for the command's summary.
"""

import os
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, timedelta

import dagster as dg

from chargeback_pipeline.core.periods import day_hours
from chargeback_pipeline.defs.automation.sensors import daily_rollup, monthly_rollup, rollup_inputs_tags
from chargeback_pipeline.defs.dagster_internals import (
    EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS,
    EVENT_BATCH_SIZE,
    record_code_location,
)
from chargeback_pipeline.defs.jobs import (
    CODE_LOCATION,
    CODE_LOCATION_TAGS,
    DAILY_JOB,
    HOURLY_JOB,
    MONTHLY_JOB,
    REPOSITORY,
    with_jobs,
)
from chargeback_pipeline.defs.partition_checks import run_level_by_check
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
# Both are Dagster internals (defs/dagster_internals.py, tested against the installed Dagster).
BACKFILL_DAGSTER_ENV = {EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS: "1", EVENT_BATCH_SIZE: "1000"}
# The assets that take the publication decisions, and so the overrides (publishing/gate.PublishConfig).
DAY_PUBLICATION, MONTH_PUBLICATION, USAGE_REPORT = "day_publication", "month_publication", "product_usage_report"
# Tags of every run a backfill starts: who launched it, and which process runs it ("host:pid"), so the next
# `chargeback` on this host can tell a run whose process was killed from one still running
# (`cli.commands.fail_abandoned_runs`).
LAUNCHED_BY_TAG = "chargeback/launched_by"
LAUNCHED_BY = "chargeback-cli"
PROCESS_TAG = "chargeback/process"


def this_process() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


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
        """The chunk's asset check results by `asset:check` name: each run's evaluations of a check (one per
        partition) folded into one (`partition_checks.run_level`)."""
        return {
            f"{e.asset_key.to_user_string()}:{e.check_name}": e
            for result in (self.hourly, self.daily, self.monthly)
            for e in run_level_by_check(result.get_asset_check_evaluations())
        }

    def checks_with_partitions(self) -> list[tuple[dg.AssetCheckEvaluation, str]]:
        """Every check result of the chunk's runs, with the partitions its run covered."""
        return [pair for result in (self.hourly, self.daily, self.monthly) for pair in checks_with_partitions(result)]


def run_partitions(run: dg.ExecuteInProcessResult | dg.DagsterRun) -> str:
    """The partition range a backfill run covered: `2026-11-20-00:00..2026-11-20-23:00`, or one key."""
    tags = (run.dagster_run if isinstance(run, dg.ExecuteInProcessResult) else run).tags
    start, end = tags.get(RANGE_START_TAG, ""), tags.get(RANGE_END_TAG, "")
    return start if start == end else f"{start}..{end}"


def checks_with_partitions(result: dg.ExecuteInProcessResult) -> list[tuple[dg.AssetCheckEvaluation, str]]:
    """The run's check results, one per check (its partitions' evaluations folded into one), each with the
    partitions it judged (its own, or else the run's range)."""
    return [
        (e, e.partition or run_partitions(result)) for e in run_level_by_check(result.get_asset_check_evaluations())
    ]


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
    job_name: str,
    instance,
    start_key: str,
    end_key: str,
    label: str,
    log_level: str,
    run_config=None,
    tags=None,
) -> dg.ExecuteInProcessResult:
    """One ranged run of the named job over [start_key, end_key], in this process."""
    result = definitions.resolve_job_def(job_name).execute_in_process(
        run_config={"loggers": {"console": {"config": {"log_level": log_level}}}} | (run_config or {}),
        instance=instance,
        tags={
            RANGE_START_TAG: start_key,
            RANGE_END_TAG: end_key,
            LAUNCHED_BY_TAG: LAUNCHED_BY,
            PROCESS_TAG: this_process(),
            **CODE_LOCATION_TAGS,  # listed under the code location in the UI's runs filter
            **(tags or {}),
        },
        raise_on_error=False,
    )
    # On the Overview timeline with the runs the UI launched (failed ones too): the code location's origin.
    record_code_location(instance, result.run_id, CODE_LOCATION, CODE_LOCATION, REPOSITORY)
    if not result.success:
        failures = [
            f"{event.step_key}: {_root_cause(event.step_failure_data.error)}"
            for event in result.all_events
            if event.is_step_failure and event.step_failure_data.error
        ]
        raise BackfillFailed(f"{label} failed (run {result.run_id}): " + "; ".join(failures), result)
    return result


def _partitions(assets, kind: type[dg.PartitionsDefinition]) -> dg.TimeWindowPartitionsDefinition:
    return next(a.partitions_def for a in assets if isinstance(a.partitions_def, kind))


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
    publish_shrink_reason: str | None = None,
) -> list[ChunkDone]:
    """Materialize FIRST_DAY..LAST_DAY of `definitions` (`definitions.build_definitions`); `log_level` is
    the console's (the run's event log keeps all).

    `publish_override_reason` publishes reports even where reconciliation blocks them,
    `publish_shrink_reason` even where they would replace a larger published day; each is recorded.
    """
    report_config = {}
    if publish_override_reason:
        report_config |= {"publish_despite_blocked_reconciliation": True}
    if publish_shrink_reason:
        report_config |= {"publish_despite_shrink": True}
    reasons = [reason for reason in (publish_override_reason, publish_shrink_reason) if reason]
    daily_config = monthly_config = None
    if report_config:
        report_config["override_reason"] = "; ".join(dict.fromkeys(reasons))
        # The usage report takes the day's decision itself when no pricing file is configured.
        daily_config = {"ops": {asset: {"config": report_config} for asset in (DAY_PUBLICATION, USAGE_REPORT)}}
    if publish_shrink_reason:  # a day published smaller makes its month's statement smaller too
        month_config = {"publish_despite_shrink": True, "override_reason": publish_shrink_reason}
        monthly_config = {"ops": {MONTH_PUBLICATION: {"config": month_config}}}
    definitions = with_jobs(definitions)
    assets = list(definitions.assets)
    hourly_partitions = _partitions(assets, dg.HourlyPartitionsDefinition)
    daily_partitions = _partitions(assets, dg.DailyPartitionsDefinition)
    monthly_partitions = _partitions(assets, dg.MonthlyPartitionsDefinition)
    days_of_hours = daily_rollup(hourly_partitions, daily_partitions)
    months_of_days = monthly_rollup(daily_partitions, monthly_partitions)
    done = []
    with _backfill_dagster_env():
        for start, end in day_chunks(first_day, last_day, days_per_run):
            hours = (hour_partition_key(day_hours(start)[0]), hour_partition_key(day_hours(end)[-1]))
            hourly = _run(definitions, HOURLY_JOB, instance, *hours, f"hours of {start}..{end}", log_level)
            days = (day_partition_key(start), day_partition_key(end))
            day_keys = daily_partitions.get_partition_keys_in_range(dg.PartitionKeyRange(*days))
            daily = _run(
                definitions,
                DAILY_JOB,
                instance,
                *days,
                f"days {start}..{end}",
                log_level,
                daily_config,
                rollup_inputs_tags(instance, assets, days_of_hours, day_keys),
            )
            months = (month_partition_key(start), month_partition_key(end))
            month_keys = monthly_partitions.get_partition_keys_in_range(dg.PartitionKeyRange(*months))
            monthly = _run(
                definitions,
                MONTHLY_JOB,
                instance,
                *months,
                f"statements of {start}..{end}",
                log_level,
                monthly_config,
                tags=rollup_inputs_tags(instance, assets, months_of_days, month_keys),
            )
            chunk = ChunkDone(start, end, hourly, daily, monthly)
            done.append(chunk)
            if on_chunk:
                on_chunk(chunk)
    return done
