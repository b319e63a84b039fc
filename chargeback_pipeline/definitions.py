"""The one place that builds the Dagster `Definitions`: assets, checks, schedules, sensors and resources.

Nothing is read at import: Dagster calls `defs()` when it loads the code location, which reads the
settings (`settings.py`) and builds everything from them. Environment switching happens here and only
here: the settings say which source and which storage, and this module turns that into resources.
Secrets reach resources as `dg.EnvVar`, resolved at run time.
"""

import dagster as dg

from chargeback_pipeline.defs.assets import build_assets
from chargeback_pipeline.defs.automation.schedules import hourly_schedule
from chargeback_pipeline.defs.automation.sensors import daily_rollup_sensor, monthly_rollup_sensor
from chargeback_pipeline.defs.jobs import PipelineJobs
from chargeback_pipeline.defs.partitions import Calendar
from chargeback_pipeline.defs.resources import DataQualityPolicy, ObjectStoreResource, PricingResource
from chargeback_pipeline.settings import BLOB_CONNECTION_STRING_ENV, Settings, current_settings


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
        "source": settings.source_resource,
        "lake": lake,
        "reports": _store(settings, settings.output_dir, ""),
        "policy": DataQualityPolicy(**settings.thresholds(), known_deployments=settings.deployment_list),
        "pricing": PricingResource(path=str(settings.pricing_file or "")),
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
        ],
        # Runs are small and sequential by nature (hours, then days); in-process execution saves the
        # seconds a subprocess per step costs, and keeps one source query stream per run.
        executor=dg.in_process_executor,
    )


@dg.definitions
def defs() -> dg.Definitions:
    return build_definitions(current_settings())
