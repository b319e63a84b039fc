"""The one place that builds the Dagster `Definitions`: assets, checks, schedules and resources.

Environment switching happens here and only here: `settings.py` says which source and which storage,
and this module turns that into resources. Secrets reach resources as `dg.EnvVar`, resolved at run time.
"""

import dagster as dg

from chargeback_pipeline.assets import raw, reports, usage
from chargeback_pipeline.resources import LogSourceResource, ObjectStoreResource
from chargeback_pipeline.settings import Settings, current_settings

BLOB_CONNECTION_STRING_ENV = "CHARGEBACK_BLOB_CONNECTION_STRING"


def _store(settings: Settings, local_dir, prefix: str) -> ObjectStoreResource:
    if settings.blob_connection_string_set:
        return ObjectStoreResource(
            blob_connection_string=dg.EnvVar(BLOB_CONNECTION_STRING_ENV),
            blob_container=settings.blob_container,
            blob_prefix=prefix,
        )
    if settings.blob_account_url:
        return ObjectStoreResource(
            blob_account_url=settings.blob_account_url, blob_container=settings.blob_container, blob_prefix=prefix
        )
    return ObjectStoreResource(local_dir=str(local_dir))


def build_resources(settings: Settings) -> dict[str, dg.ConfigurableResource]:
    lake = (
        _store(settings, settings.lake_dir, settings.blob_lake_prefix)
        if settings.lake_on_blob
        else ObjectStoreResource(local_dir=str(settings.lake_dir))
    )
    return {
        "source": LogSourceResource(
            kind=settings.source.value,
            folder=str(settings.source_folder) if settings.source_folder else None,
            simulated_requests_per_hour=settings.simulated_requests_per_hour,
            simulated_seed=settings.simulated_seed,
            gateway_table=settings.gateway_table,
            llm_table=settings.llm_table,
            log_analytics_workspace_id=settings.log_analytics_workspace_id,
            log_analytics_endpoint=settings.log_analytics_endpoint,
            metrics_endpoint=settings.metrics_endpoint,
            openai_resource_ids=settings.resource_id_list,
            llm_margin_minutes=settings.llm_join_overlap_minutes,
        ),
        "lake": lake,
        "reports": _store(settings, settings.output_dir, ""),
    }


ALL_ASSETS = [
    raw.raw_gateway_logs,
    raw.raw_llm_logs,
    raw.raw_deployment_metrics,
    usage.attributed_requests,
    usage.daily_product_usage,
    reports.product_usage_report,
]


def build_definitions(settings: Settings) -> dg.Definitions:
    return dg.Definitions(assets=ALL_ASSETS, resources=build_resources(settings))


defs = build_definitions(current_settings())
