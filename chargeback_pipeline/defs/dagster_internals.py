"""The Dagster internals the pipeline relies on where Dagster 1.13 has no public API, all in one place.

Each is tested against the installed Dagster (chargeback_pipeline_tests/test_dagster_internals.py): an
upgrade that renames, moves or stops honouring one fails that test by name, not a run in production.

- `AssetJob`: the class `dg.define_asset_job` returns; Dagster exports the function, not the class, which
  the job factory (defs/jobs.py) names in its signatures.
- `CheckTargetMaterialization`: the materialization an `AssetCheckEvaluation` judged
  (`target_materialization_data=`); a ranged run's per-partition check results name their partition's
  materialization with it (defs/partition_checks.py). The public `dg.AssetCheckEvaluation` takes it, but
  its type is not exported.
- Environment variables Dagster reads at run time, set by `chargeback backfill` for its own runs
  (cli/backfill.py) and by the image for every run (deploy/Dockerfile):
  `EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS` (one "materialization planned" event per asset per ranged run,
  not one per partition; read by the event log storage) and `EVENT_BATCH_SIZE` (a run's events written in
  batches of that many; PostgreSQL storage inserts them at once).
"""

from dagster._core.definitions.asset_checks.asset_check_evaluation import (
    AssetCheckEvaluationTargetMaterializationData as CheckTargetMaterialization,
)
from dagster._core.definitions.unresolved_asset_job_definition import UnresolvedAssetJobDefinition as AssetJob

EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS = "DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS"
EVENT_BATCH_SIZE = "DAGSTER_EVENT_BATCH_SIZE"

__all__ = ["EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS", "EVENT_BATCH_SIZE", "AssetJob", "CheckTargetMaterialization"]
