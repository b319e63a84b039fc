"""The Dagster internals the pipeline relies on where Dagster 1.13 has no public API, all in one place.

Each is tested against the installed Dagster (chargeback_pipeline_tests/test_dagster_internals.py): an
upgrade that renames, moves or stops honouring one fails that test by name, not a run in production.

- `AssetJob`: the class `dg.define_asset_job` returns; Dagster exports the function, not the class, which
  the job factory (defs/jobs.py) names in its signatures.
- `CheckTargetMaterialization`: the materialization an `AssetCheckEvaluation` judged
  (`target_materialization_data=`); a ranged run's per-partition check results name their partition's
  materialization with it (defs/partition_checks.py). The public `dg.AssetCheckEvaluation` takes it, but
  its type is not exported.
- `record_code_location`: gives a run executed in this process (`execute_in_process`, used by
  `chargeback backfill`) the origin of the code location the webserver loads, through the run storage's
  `replace_job_origin` (what the public `dagster run migrate-repository` command uses). Dagster's Overview
  timeline draws only runs with an origin (`repositoryOrigin` in GraphQL), which `execute_in_process`
  never records; a run launched through the workspace instead would run in a subprocess of a code server,
  not in the command's own process.
- `one_event_per_millisecond`: Dagster dates an event by the `logging.LogRecord` it is logged with
  (`record.created`), and a ranged run logs its partitions' materializations and check evaluations within
  the same millisecond. The UI (1.13) keeps one event per run and millisecond in an asset's Events tab
  (`usePaginatedAssetEvents`: `uniqBy(runId + timestamp)`) and plots check results by time: 24 hours of
  one run showed as one event, and every check point at one instant. A filter on the step's log manager
  (a `logging.Logger`) waits, when a record shares the previous one's millisecond, for the next
  millisecond and dates the record then: each event keeps its true time, one millisecond apart at least.
- Environment variables Dagster reads at run time, set by `chargeback backfill` for its own runs
  (cli/backfill.py) and by the image for every run (deploy/Dockerfile):
  `EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS` (one "materialization planned" event per asset per ranged run,
  not one per partition; read by the event log storage) and `EVENT_BATCH_SIZE` (a run's events written in
  batches of that many; PostgreSQL storage inserts them at once).
"""

import logging
import sys
import time

import dagster as dg
from dagster._core.definitions.asset_checks.asset_check_evaluation import (
    AssetCheckEvaluationTargetMaterializationData as CheckTargetMaterialization,
)
from dagster._core.definitions.unresolved_asset_job_definition import UnresolvedAssetJobDefinition as AssetJob
from dagster._core.remote_origin import ManagedGrpcPythonEnvCodeLocationOrigin, RemoteRepositoryOrigin
from dagster._core.types.loadable_target_origin import LoadableTargetOrigin

EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS = "DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS"
EVENT_BATCH_SIZE = "DAGSTER_EVENT_BATCH_SIZE"


def record_code_location(
    instance: dg.DagsterInstance, run_id: str, module_name: str, location_name: str, repository_name: str
) -> None:
    """Record on a finished in-process run the origin of the code location `location_name` (a
    `python_module` location of `module_name`, as workspace.yaml loads it) and its repository, as a run
    the webserver launched carries it: the run is then drawn on the Overview timeline under its job."""
    run = instance.get_run_by_id(run_id)
    location = ManagedGrpcPythonEnvCodeLocationOrigin(
        LoadableTargetOrigin(executable_path=sys.executable, module_name=module_name), location_name=location_name
    )
    origin = RemoteRepositoryOrigin(location, repository_name).get_job_origin(run.job_name)
    instance.run_storage.replace_job_origin(run, origin)


MAX_WAITS_PER_RECORD = 50  # of 0.2 ms: a clock that does not move delays a record 10 ms at most


class _OneEventPerMillisecond(logging.Filter):
    def __init__(self) -> None:
        super().__init__()
        self.last_millisecond = -1

    def filter(self, record: logging.LogRecord) -> bool:
        for _ in range(MAX_WAITS_PER_RECORD):
            if int(record.created * 1000) > self.last_millisecond:
                break
            time.sleep(0.0002)
            record.created = time.time()
            record.msecs = (record.created - int(record.created)) * 1000
        self.last_millisecond = int(record.created * 1000)
        return True


def one_event_per_millisecond(log: logging.Logger) -> None:
    """Date each event `log` (a step's `context.log`) logs at least one millisecond after the one before
    (once per step; the module docstring says why)."""
    if not any(isinstance(existing, _OneEventPerMillisecond) for existing in log.filters):
        log.addFilter(_OneEventPerMillisecond())


__all__ = [
    "EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS",
    "EVENT_BATCH_SIZE",
    "AssetJob",
    "CheckTargetMaterialization",
    "one_event_per_millisecond",
    "record_code_location",
]
