"""The one place that builds the Dagster `Definitions`: assets, checks, schedules and resources.

Environment switching happens here and only here: `settings.py` says which source and which storage,
and this module turns that into resources. Secrets reach resources as `dg.EnvVar`, resolved at run time.
"""

import dagster as dg

from chargeback_pipeline.assets import costs, focus_export, monthly_statement, raw, reconciliation, reports, usage
from chargeback_pipeline.resources import DataQualityPolicy, LogSourceResource, ObjectStoreResource, PricingResource
from chargeback_pipeline.rollups import daily_rollup_sensor, monthly_rollup_sensor
from chargeback_pipeline.schedules import hourly_schedule
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
        "policy": DataQualityPolicy(
            reconciliation_warn_percent=settings.reconciliation_warn_percent,
            reconciliation_block_percent=settings.reconciliation_block_percent,
            reconciliation_warn_tokens=settings.reconciliation_warn_tokens,
            reconciliation_block_tokens=settings.reconciliation_block_tokens,
            reconciliation_min_tokens=settings.reconciliation_min_tokens,
            quarantine_max_percent=settings.quarantine_max_percent,
            orphan_llm_max_percent=settings.orphan_llm_max_percent,
            known_deployments=settings.deployment_list or sorted(settings.pricing.deployment_names()),
        ),
        "pricing": PricingResource(path=str(settings.pricing_file)),
    }


ALL_ASSETS = [
    raw.raw_gateway_logs,
    raw.raw_llm_logs,
    raw.raw_deployment_metrics,
    usage.attributed_requests,
    usage.daily_product_usage,
    reconciliation.deployment_reconciliation,
    reconciliation.daily_reconciliation,
    reports.product_usage_report,
    costs.daily_chargeback,
    focus_export.focus_export,
    monthly_statement.monthly_statement,
]


def build_definitions(settings: Settings) -> dg.Definitions:
    horizon_days = settings.catchup_hours // 24 + 2
    return dg.Definitions(
        assets=ALL_ASSETS,
        resources=build_resources(settings),
        schedules=[
            hourly_schedule(
                ALL_ASSETS,
                lag_minutes=settings.schedule_lag_minutes,
                lookback_hours=settings.late_data_lookback_hours,
                catchup_hours=settings.catchup_hours,
            )
        ],
        sensors=[
            daily_rollup_sensor(ALL_ASSETS, horizon_days=horizon_days),
            monthly_rollup_sensor(ALL_ASSETS, horizon_days=horizon_days),
        ],
        # Runs are small and sequential by nature (hours, then days); in-process execution saves the
        # seconds a subprocess per step costs, and keeps one source query stream per run.
        executor=dg.in_process_executor,
    )


defs = build_definitions(current_settings())
