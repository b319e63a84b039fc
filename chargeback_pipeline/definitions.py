"""The one place that builds the Dagster `Definitions`: assets, checks, schedules, sensors and resources.

Nothing is read at import: Dagster calls `defs()` when it loads the code location, which reads the
settings (`settings.py`) and builds everything from them. Environment switching happens here and only
here: the settings say which source and which storage, and this module turns that into resources.
Secrets reach resources as `dg.EnvVar`, resolved at run time.
"""

import dagster as dg

from chargeback_pipeline.defs.assets import build_assets
from chargeback_pipeline.defs.automation.alerts import alert_sensor
from chargeback_pipeline.defs.automation.schedules import hourly_schedule
from chargeback_pipeline.defs.automation.sensors import daily_rollup_sensor, monthly_rollup_sensor
from chargeback_pipeline.defs.cost_export.export_runs import cost_export_runs_sensor
from chargeback_pipeline.defs.jobs import PipelineJobs
from chargeback_pipeline.defs.partitions import Calendar
from chargeback_pipeline.defs.resources import (
    AlertWebhookResource,
    DataQualityPolicy,
    FinOpsPolicyResource,
    FocusExportResource,
    ObjectStoreResource,
    PricingResource,
    SqlEngineResource,
)
from chargeback_pipeline.settings import (
    ALERT_WEBHOOK_URL_ENV,
    BLOB_CONNECTION_STRING_ENV,
    COST_EXPORT_CONNECTION_STRING_ENV,
    FINOPS_HUBS_CONNECTION_STRING_ENV,
    Settings,
    current_settings,
)
from chargeback_pipeline.sources.cost_export.resource import CostExportResource


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


def _focus_export(settings: Settings) -> FocusExportResource:
    """The FOCUS version and the FinOps hubs target (the connection string as dg.EnvVar, never held)."""
    return FocusExportResource(
        version=settings.focus_version,
        hubs_local_dir=str(settings.finops_hubs_dir) if settings.finops_hubs_dir else None,
        hubs_blob_account_url=settings.finops_hubs_blob_account_url,
        hubs_blob_connection_string=(
            dg.EnvVar(FINOPS_HUBS_CONNECTION_STRING_ENV)
            if settings.finops_hubs_connection_string and settings.finops_hubs_connection_string.get_secret_value()
            else None
        ),
        hubs_scope_path=settings.finops_hubs_scope_path,
    )


def _cost_export(settings: Settings) -> CostExportResource | None:
    """The Cost Management export (README "Actual cost"); None when no location is set."""
    secret = settings.cost_export_connection_string
    connection = dg.EnvVar(COST_EXPORT_CONNECTION_STRING_ENV) if secret and secret.get_secret_value() else None
    if not (connection or settings.cost_export_blob_account_url or settings.cost_export_dir):
        return None
    return CostExportResource(
        local_dir=str(settings.cost_export_dir) if settings.cost_export_dir else None,
        blob_account_url=settings.cost_export_blob_account_url,
        blob_connection_string=connection,
        container=settings.cost_export_container,
        root_folder=settings.cost_export_root_folder,
        variance_warn_share=str(settings.cost_variance_warn_share),
    )


def build_resources(settings: Settings) -> dict[str, dg.ConfigurableResource]:
    lake = (
        _store(settings, settings.lake_dir, settings.blob_lake_prefix)
        if settings.lake_on_blob
        else ObjectStoreResource(local_dir=str(settings.lake_dir))
    )
    return {
        "source": settings.source_resource,
        "lake": lake,
        "reports": _store(settings, settings.output_dir, ""),
        "policy": DataQualityPolicy(**settings.thresholds(), known_deployments=settings.deployment_list),
        "sql_engine": SqlEngineResource(memory_limit=settings.duckdb_memory_limit),
        "focus": _focus_export(settings),
        "finops": FinOpsPolicyResource(**settings.finops_thresholds(), budgets_file=str(settings.budgets_file or "")),
        # The webhook URL carries a token: handed over as dg.EnvVar, never held in settings or run config.
        "alert_webhook": AlertWebhookResource(
            url=dg.EnvVar(ALERT_WEBHOOK_URL_ENV) if settings.alert_webhook_url_set else "",
            payload_format=settings.alert_webhook_format,
        ),
        "pricing": PricingResource(
            path=str(settings.pricing_file or ""),
            ptu_minimum=settings.ptu_minimum,
            ptu_increment=settings.ptu_increment,
            rightsizing_warn_saving=str(settings.rightsizing_warn_saving),
            rightsizing_min_days_to_cut=settings.rightsizing_min_days_to_cut,
            cost_export=_cost_export(settings),
        ),
    }


def build_definitions(settings: Settings) -> dg.Definitions:
    calendar = Calendar.starting(settings.partitions_start)
    assets = build_assets(calendar)
    # Named jobs (hours, days, months): the schedule, the sensors and `chargeback backfill` all run these,
    # so every run in the UI says which step it was.
    jobs = PipelineJobs.of(assets)
    return dg.Definitions(
        assets=assets,
        jobs=jobs.all(),
        resources=build_resources(settings),
        schedules=[
            hourly_schedule(
                assets,
                calendar.hourly,
                lag_minutes=settings.schedule_lag_minutes,
                lookback_hours=settings.late_data_lookback_hours,
                catchup_hours=settings.catchup_hours,
                job=jobs.hourly,
            )
        ],
        sensors=[
            daily_rollup_sensor(assets, calendar, horizon_days=settings.rollup_horizon_days, job=jobs.daily),
            monthly_rollup_sensor(assets, calendar, horizon_days=settings.rollup_horizon_days, job=jobs.monthly),
            alert_sensor(),
            cost_export_runs_sensor(calendar, job=jobs.daily),
        ],
        # Runs are small and sequential by nature (hours, then days); in-process execution saves the
        # seconds a subprocess per step costs, and keeps one source query stream per run.
        executor=dg.in_process_executor,
    )


@dg.definitions
def defs() -> dg.Definitions:
    return build_definitions(current_settings())
