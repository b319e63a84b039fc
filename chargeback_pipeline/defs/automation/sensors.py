"""The daily and monthly steps: sensors that roll days (and months) up once their inputs are in, and again
whenever one of those changed.

`daily_rollup`: for each recent day whose 24 hours are materialized for every hourly asset the daily
assets read, it fingerprints those hours' content (the `chargeback/content_hash` each hourly asset
records per partition) and requests a run of `2_daily_rollup_job` (the daily-partitioned assets) for that
day, tagged with the fingerprint, unless the day was last rolled up from the same fingerprint (`chargeback
backfill` tags its runs with it too: `rollup_inputs_tags`). A re-pull that changed nothing leaves the
fingerprint as it was: no run starts and no file is touched. `monthly_rollup` does the same one level up
(`3_monthly_statement_job`), for the months whose days were rolled up again (the month in progress included:
it covers the days so far).

A run that carries no fingerprint (launched from the UI: an asset page's Materialize, whose run is
Dagster's `__ASSET_JOB`, or a UI backfill) is judged by the fingerprint of its inputs as they were when it
started (their latest materializations before its start), so a quiet re-pull after it starts nothing either.

A failed rollup is asked for again after the inputs are next materialized (the next hourly run), not
every few minutes, and at most three times for the same inputs: a day held back by a blocked
reconciliation waits for its data to change or for someone to publish it with the override. One still
queued or running is not asked for twice.
"""

import hashlib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

import dagster as dg

from chargeback_pipeline.defs.automation.fingerprints import CONTENT_HASH_METADATA
from chargeback_pipeline.defs.jobs import DAILY_JOB, MONTHLY_JOB, AssetJob, asset_job
from chargeback_pipeline.defs.partitions import Calendar, partitioned_keys

ROLLUP_INPUTS_TAG = "chargeback/rollup_inputs"
# A ranged rollup run (`chargeback backfill --days-per-run 7`) covers several partitions: its tag holds the
# fingerprint of each, separated by this.
FINGERPRINT_SEPARATOR = ","
MAX_ATTEMPTS = 3  # failed rollups of the same inputs before the sensor leaves the partition to a human
IN_FLIGHT = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
]
FAILED = dg.DagsterRunStatus.FAILURE


def _latest_by_partition(
    instance: dg.DagsterInstance, key: dg.AssetKey, partition_keys: Sequence[str], before: float | None = None
) -> dict[str, dg.EventLogRecord]:
    """The latest materialization record of each partition that has one (before the timestamp `before`)."""
    found, wanted, cursor = {}, set(partition_keys), None
    while wanted:
        page = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=key, asset_partitions=sorted(wanted), before_timestamp=before),
            limit=1000,
            cursor=cursor,
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


def fingerprints(
    instance: dg.DagsterInstance,
    inputs: Sequence[dg.AssetKey],
    fine_keys: dict[str, list[str]],
    complete_only: bool,
    before: float | None = None,
) -> dict[str, tuple[str, int]]:
    """Per coarse partition: a fingerprint of its fine partitions' content, and their newest storage id;
    with `before` (a timestamp), of their content as it was then.

    With `complete_only`, a partition some of whose fine partitions are not materialized is left out.
    """
    latest = {
        key: _latest_by_partition(instance, key, [pk for pks in fine_keys.values() for pk in pks], before)
        for key in inputs
    }
    found = {}
    for coarse_key, keys in fine_keys.items():
        records = [(key, pk, latest[key].get(pk)) for key in inputs for pk in keys]
        present = [(key, pk, record) for key, pk, record in records if record is not None]
        if not present or (complete_only and len(present) < len(records)):
            continue
        digest = hashlib.sha256()
        for key, pk, record in present:
            digest.update(f"{key.to_user_string()}|{pk}|{_content(record)}\n".encode())
        found[coarse_key] = (digest.hexdigest()[:32], max(record.storage_id for _, _, record in present))
    return found


def up_to_date(
    instance: dg.DagsterInstance,
    outputs: Sequence[dg.AssetKey],
    inputs: dict[str, tuple[str, int]],
    fingerprint_before=None,
) -> set[str]:
    """Partitions every output was last materialized from their current inputs.

    That is, by a run tagged with the current fingerprint (a rollup sensor's run, or a `chargeback backfill`
    run, whose tag holds the fingerprint of every partition it covered), or by an untagged run (launched
    from the UI) whose inputs, as they were when it started, have the current fingerprint
    (`fingerprint_before(partition, timestamp)`; without it: recorded after the newest input).
    """
    latest = {key: _latest_by_partition(instance, key, list(inputs)) for key in outputs}
    run_ids = sorted({record.run_id for records in latest.values() for record in records.values()})
    runs = instance.get_run_records(dg.RunsFilter(run_ids=run_ids)) if run_ids else []
    tags = {r.dagster_run.run_id: r.dagster_run.tags for r in runs}
    started = {r.dagster_run.run_id: r.start_time or r.create_timestamp.timestamp() for r in runs}

    def current(record: dg.EventLogRecord | None, partition: str, fingerprint: str, newest_input: int) -> bool:
        if record is None:
            return False
        tagged = tags.get(record.run_id, {}).get(ROLLUP_INPUTS_TAG)
        if tagged is not None:
            return fingerprint in tagged.split(FINGERPRINT_SEPARATOR)
        if fingerprint_before is None or record.run_id not in started:
            return record.storage_id > newest_input
        return fingerprint_before(partition, started[record.run_id]) == fingerprint

    return {
        pk
        for pk, (fingerprint, newest_input) in inputs.items()
        if all(current(latest[key].get(pk), pk, fingerprint, newest_input) for key in outputs)
    }


@dataclass(frozen=True)
class Rollup:
    """Coarse partitions (days, months) computed from fine ones (hours, days) of the assets they read."""

    fine: dg.TimeWindowPartitionsDefinition
    coarse: dg.TimeWindowPartitionsDefinition
    complete_only: bool  # a day waits for all its hours; a month in progress is stated as far as it goes
    horizon: timedelta  # how far before the newest input partition to look for changes

    def inputs(self, assets: Sequence) -> list[dg.AssetKey]:
        """The fine-partitioned assets that the coarse-partitioned ones read."""
        fine, coarse = partitioned_keys(assets, self.fine), partitioned_keys(assets, self.coarse)
        specs = [s for a in assets if isinstance(a, dg.AssetsDefinition) for s in a.specs if s.key in coarse]
        read = {dep.asset_key for spec in specs for dep in spec.deps}
        return [key for key in fine if key in read] or fine

    def coarse_keys(self, newest_fine_key: str) -> list[str]:
        """The coarse partitions from `horizon` before the newest fine partition up to the one holding it."""
        anchor = self.fine.time_window_for_partition_key(newest_fine_key).start
        moment, keys = max(anchor - self.horizon, self.coarse.start), []
        while moment <= anchor:
            keys.append(self.coarse.get_partition_key_for_timestamp(moment.timestamp()))
            moment = self.coarse.time_window_for_partition_key(keys[-1]).end
        return keys

    def requests(
        self, instance: dg.DagsterInstance, inputs: Sequence[dg.AssetKey], outputs: Sequence[dg.AssetKey]
    ) -> list[dg.RunRequest] | dg.SkipReason:
        newest = max(
            (r for key in inputs for r in instance.fetch_materializations(key, limit=1).records),
            key=lambda r: r.storage_id,
            default=None,
        )
        if newest is None:
            return dg.SkipReason("none of the partitions this rollup reads is materialized yet")
        fine_keys = {
            key: self.fine.get_partition_keys_in_time_window(self.coarse.time_window_for_partition_key(key))
            for key in self.coarse_keys(newest.partition_key)
        }
        by_partition = fingerprints(instance, inputs, fine_keys, self.complete_only)

        def fingerprint_before(partition: str, timestamp: float) -> str | None:
            found = fingerprints(instance, inputs, {partition: fine_keys[partition]}, self.complete_only, timestamp)
            return found[partition][0] if partition in found else None

        done = up_to_date(instance, outputs, by_partition, fingerprint_before)
        stale = {pk: fp for pk, (fp, _) in sorted(by_partition.items()) if pk not in done}
        earlier = (
            instance.get_run_records(
                dg.RunsFilter(tags={ROLLUP_INPUTS_TAG: list(stale.values())}, statuses=[*IN_FLIGHT, FAILED])
            )
            if stale
            else []
        )
        running = {r.dagster_run.tags[ROLLUP_INPUTS_TAG] for r in earlier if r.dagster_run.status != FAILED}
        failures = Counter(r.dagster_run.tags[ROLLUP_INPUTS_TAG] for r in earlier if r.dagster_run.status == FAILED)
        # Why each partition looked at gets no run, in its own words (the tick's skip reason).
        reasons = {}
        for pk in fine_keys:
            if pk not in by_partition:
                reasons[pk] = "waiting for all its inputs" if self.complete_only else "none of its inputs yet"
            elif pk in done:
                reasons[pk] = "rolled up from its current inputs"
            elif stale[pk] in running:
                reasons[pk] = "a rollup of its current inputs is queued or running"
            elif failures[stale[pk]] >= MAX_ATTEMPTS:
                reasons[pk] = (
                    f"failed {MAX_ATTEMPTS} times with its current inputs (a blocked reconciliation?): runs again "
                    "when they change"
                )
        return [
            # The newest input's storage id in the run key: a failed rollup is asked for again after the
            # inputs are next materialized (a run key is never used twice), not every few minutes.
            dg.RunRequest(run_key=f"{pk}:{fp}:{newest.storage_id}", partition_key=pk, tags={ROLLUP_INPUTS_TAG: fp})
            for pk, fp in stale.items()
            if pk not in reasons
        ] or dg.SkipReason("; ".join(f"{pk}: {reason}" for pk, reason in reasons.items()))


def daily_rollup(
    hourly: dg.TimeWindowPartitionsDefinition, daily: dg.TimeWindowPartitionsDefinition, horizon_days: int = 0
) -> Rollup:
    """Days from their hours: a day waits for all 24."""
    return Rollup(hourly, daily, complete_only=True, horizon=timedelta(days=horizon_days))


def monthly_rollup(
    daily: dg.TimeWindowPartitionsDefinition, monthly: dg.TimeWindowPartitionsDefinition, horizon_days: int = 0
) -> Rollup:
    """Months from their days: the month in progress is stated as far as it goes."""
    return Rollup(daily, monthly, complete_only=False, horizon=timedelta(days=horizon_days))


def rollup_inputs_tags(
    instance: dg.DagsterInstance, assets: Sequence, rollup: Rollup, coarse_keys: Sequence[str]
) -> dict[str, str]:
    """The tag the rollup's sensor would put on a run of `coarse_keys` now (`{ROLLUP_INPUTS_TAG: fingerprints}`),
    for a run started elsewhere (`chargeback backfill`). Computed by the sensor's own `fingerprints()` from
    the instance, so the sensor sees those partitions rolled up from their current inputs and does not roll
    them up again while the inputs' content stays the same (a re-pull of the same rows). Empty when none of
    them has its inputs."""
    fine_keys = {
        key: rollup.fine.get_partition_keys_in_time_window(rollup.coarse.time_window_for_partition_key(key))
        for key in coarse_keys
    }
    found = fingerprints(instance, rollup.inputs(assets), fine_keys, rollup.complete_only)
    return {ROLLUP_INPUTS_TAG: FINGERPRINT_SEPARATOR.join(fp for _, (fp, _) in sorted(found.items()))} if found else {}


def rollup_sensor(
    name: str,
    rollup: Rollup,
    assets: Sequence,
    minimum_interval_seconds: int,
    default_status: dg.DefaultSensorStatus,
    description: str,
    job: AssetJob,
) -> dg.SensorDefinition:
    inputs, outputs = rollup.inputs(assets), partitioned_keys(assets, rollup.coarse)

    @dg.sensor(
        name=name,
        job=job,
        minimum_interval_seconds=minimum_interval_seconds,
        default_status=default_status,
        description=description,
    )
    def _sensor(context: dg.SensorEvaluationContext):
        return rollup.requests(context.instance, inputs, outputs)

    return _sensor


def daily_rollup_sensor(
    assets: Sequence,
    calendar: Calendar,
    horizon_days: int,
    minimum_interval_seconds: int = 300,
    default_status: dg.DefaultSensorStatus = dg.DefaultSensorStatus.RUNNING,
    job: AssetJob | None = None,
) -> dg.SensorDefinition:
    """The sensor of `job` (`2_daily_rollup_job`, built from `assets` when not given)."""
    return rollup_sensor(
        "daily_rollup",
        daily_rollup(calendar.hourly, calendar.daily, horizon_days),
        assets,
        minimum_interval_seconds,
        default_status,
        "Runs the daily assets for a day once all its hours are materialized, and again whenever the content "
        f"of one of its hours changed (late rows). Looks at the last {horizon_days} days.",
        job or asset_job(DAILY_JOB, assets, calendar.daily),
    )


def monthly_rollup_sensor(
    assets: Sequence,
    calendar: Calendar,
    horizon_days: int,
    minimum_interval_seconds: int = 300,
    default_status: dg.DefaultSensorStatus = dg.DefaultSensorStatus.RUNNING,
    job: AssetJob | None = None,
) -> dg.SensorDefinition:
    """The sensor of `job` (`3_monthly_statement_job`, built from `assets` when not given)."""
    return rollup_sensor(
        "monthly_rollup",
        monthly_rollup(calendar.daily, calendar.monthly, horizon_days),
        assets,
        minimum_interval_seconds,
        default_status,
        "Runs the monthly assets for a month whenever one of its days was rolled up again: the month in "
        f"progress covers the days so far. Looks at the months of the last {horizon_days} days.",
        job or asset_job(MONTHLY_JOB, assets, calendar.monthly),
    )
