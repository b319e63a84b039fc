"""Drive the pipeline as the Dagster daemon does: evaluate the schedule or a sensor at a time, run what it asks.

Runs execute in process against the test's instance, with the tags the schedule or sensor put on the
request, so their materializations are what the next evaluation sees.
"""

from datetime import datetime
from typing import NamedTuple

import dagster as dg

from chargeback_pipeline.defs.automation.schedules import hourly_schedule
from chargeback_pipeline.defs.automation.sensors import daily_rollup_sensor, monthly_rollup_sensor
from chargeback_pipeline.defs.partitions import partitioned_keys
from chargeback_pipeline.settings import Settings
from chargeback_pipeline_tests.conftest import ASSETS, CALENDAR

HOURLY = partitioned_keys(ASSETS, CALENDAR.hourly)
DAILY = partitioned_keys(ASSETS, CALENDAR.daily)
MONTHLY = partitioned_keys(ASSETS, CALENDAR.monthly)
DEFAULTS = {
    "lag_minutes": Settings.model_fields["schedule_lag_minutes"].default,
    "lookback_hours": Settings.model_fields["late_data_lookback_hours"].default,
    "catchup_hours": Settings.model_fields["catchup_hours"].default,
}


class Tick(NamedTuple):
    hourly: dg.ExecuteInProcessResult | None
    daily: list[dg.ExecuteInProcessResult]
    monthly: list[dg.ExecuteInProcessResult]


def partitions_of(runs: list[dg.ExecuteInProcessResult]) -> list[str]:
    return [run.dagster_run.tags["dagster/partition"] for run in runs]


class Daemon:
    def __init__(self, instance: dg.DagsterInstance, resources: dict, **schedule_settings):
        self.instance, self.resources = instance, resources
        settings = DEFAULTS | schedule_settings
        self.schedule = hourly_schedule(ASSETS, CALENDAR.hourly, **settings)
        horizon_days = Settings().rollup_horizon_days  # the default settings' rollup horizon
        self.sensors = [(daily_rollup_sensor(ASSETS, CALENDAR, horizon_days), DAILY)]
        if MONTHLY:
            self.sensors.append((monthly_rollup_sensor(ASSETS, CALENDAR, horizon_days), MONTHLY))
        self.definitions = dg.Definitions(
            assets=ASSETS, schedules=[self.schedule], sensors=[s for s, _ in self.sensors], resources=resources
        )

    def hourly_request(self, at: datetime) -> dg.RunRequest | None:
        context = dg.build_schedule_context(instance=self.instance, scheduled_execution_time=at)
        requests = self.schedule.evaluate_tick(context).run_requests or []
        assert len(requests) <= 1, "the hourly schedule asks for one ranged run at most"
        return requests[0] if requests else None

    def sensor_requests(self, sensor: dg.SensorDefinition) -> list[dg.RunRequest]:
        context = dg.build_sensor_context(instance=self.instance, definitions=self.definitions)
        return list(sensor.evaluate_tick(context).run_requests or [])

    def run(self, request: dg.RunRequest, selection: list[dg.AssetKey]) -> dg.ExecuteInProcessResult:
        return dg.materialize(
            ASSETS,
            selection=selection,
            partition_key=request.partition_key,
            resources=self.resources,
            instance=self.instance,
            tags=request.tags,
            raise_on_error=False,
        )

    def tick(self, at: datetime) -> Tick:
        """The hourly tick at `at`, then each rollup sensor, whose runs must leave it nothing more to ask."""
        request = self.hourly_request(at)
        hourly = self.run(request, HOURLY) if request else None
        rollups = []
        for sensor, selection in self.sensors:
            runs = [self.run(r, selection) for r in self.sensor_requests(sensor)]
            if all(run.success for run in runs):
                again = self.sensor_requests(sensor)
                assert not again, f"{sensor.name} asks again for {[r.partition_key for r in again]} after their runs"
            rollups.append(runs)
        return Tick(hourly, *rollups, *([[]] * (2 - len(rollups))))
