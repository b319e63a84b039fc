"""The run's staged view of the report target (and of the FinOps hubs container): what every publishing
asset writes through, so nothing is published before the day's or month's publication decision
(`day_publication`, `month_publication`; storage/publication_staging.py says how)."""

import dagster as dg

from chargeback_pipeline.storage.object_store import ObjectStore
from chargeback_pipeline.storage.publication_staging import StagedStore, staging_prefix


def _run_id(context: dg.AssetExecutionContext) -> str:
    return context.run.run_id


def staged_reports(context: dg.AssetExecutionContext, target: ObjectStore) -> StagedStore:
    return StagedStore(target, target, f"{staging_prefix(_run_id(context))}/reports")


def staged_hub(context: dg.AssetExecutionContext, target: ObjectStore, hub: ObjectStore | None) -> StagedStore | None:
    """The hub's staged view; staged in the report target, so the hub never sees (nor ingests) a staged file."""
    return None if hub is None else StagedStore(hub, target, f"{staging_prefix(_run_id(context))}/hubs")
