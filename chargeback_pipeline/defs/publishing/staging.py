"""The run's staged view of the report target (and of the FinOps hubs container): what every publishing
asset writes through, so nothing is published before the day's or month's publication decision
(`day_publication`, `month_publication`; storage/publication_staging.py says how)."""

import dagster as dg

from chargeback_pipeline.storage.object_store import ObjectStore
from chargeback_pipeline.storage.publication_staging import STAGING_ROOT, StagedStore, staging_prefix


def _run_id(context: dg.AssetExecutionContext) -> str:
    return context.run.run_id


def staged_reports(context: dg.AssetExecutionContext, target: ObjectStore) -> StagedStore:
    return StagedStore(target, target, f"{staging_prefix(_run_id(context))}/reports")


def staged_hub(context: dg.AssetExecutionContext, target: ObjectStore, hub: ObjectStore | None) -> StagedStore | None:
    """The hub's staged view; staged in the report target, so the hub never sees (nor ingests) a staged file."""
    return None if hub is None else StagedStore(hub, target, f"{staging_prefix(_run_id(context))}/hubs")


def sweep_finished_runs(context: dg.AssetExecutionContext, target: ObjectStore) -> int:
    """Remove what runs of this instance that ended without publishing (a failed upstream step skips the
    decision) left staged; a run still going, or unknown here, keeps its folder. Returns how many files
    were removed."""
    removed = 0
    by_run: dict[str, list[str]] = {}
    for key in target.list_keys(f"{STAGING_ROOT}/"):
        run_folder = key.split("/", 2)[1]  # `run=<id>`
        by_run.setdefault(run_folder.removeprefix("run="), []).append(key)
    for run_id, run_keys in by_run.items():
        run = context.instance.get_run_by_id(run_id)
        # Only runs this instance knows to be over: another instance's run (a second machine on the same
        # container) may still be going.
        if run_id == _run_id(context) or run is None or not run.is_finished:
            continue
        for key in run_keys:
            target.delete(key)
        removed += len(run_keys)
    if removed:
        context.log.info(f"removed {removed} file(s) staged by finished runs that did not publish them")
    return removed
