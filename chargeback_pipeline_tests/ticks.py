"""Drive the pipeline as the Dagster daemon does: evaluate the schedule or a sensor at a time, run what it asks.

Runs execute in process against the test's instance, with the tags the schedule or sensor put on the
request, so their materializations are what the next evaluation sees.
"""

from datetime import datetime
from typing import NamedTuple

import dagster as dg

from chargeback_pipeline.definitions import ALL_ASSETS
from chargeback_pipeline.partitions import daily_partitions, hourly_partitions, monthly_partitions
from chargeback_pipeline.rollups import daily_rollup_sensor, monthly_rollup_sensor
from chargeback_pipeline.schedules import hourly_schedule, partitioned_keys

HOURLY = partitioned_keys(ALL_ASSETS, hourly_partitions)
DAILY = partitioned_keys(ALL_ASSETS, daily_partitions)
MONTHLY = partitioned_keys(ALL_ASSETS, monthly_partitions)


class Tick(NamedTuple):
    hourly: dg.ExecuteInProcessResult | None
    daily: list[dg.ExecuteInProcessResult]
    monthly: list[dg.ExecuteInProcessResult]


def partitions_of(runs: list[dg.ExecuteInProcessResult]) -> list[str]:
    return [run.dagster_run.tags["dagster/partition"] for run in runs]


class Daemon:
    def __init__(self, instance: dg.DagsterInstance, resources: dict, **schedule_settings):
        self.instance, self.resources = instance, resources
        self.schedule = hourly_schedule(ALL_ASSETS, **schedule_settings)
        self.sensors = [(daily_rollup_sensor(ALL_ASSETS), DAILY)]
        if MONTHLY:
            self.sensors.append((monthly_rollup_sensor(ALL_ASSETS), MONTHLY))
        self.definitions = dg.Definitions(
            assets=ALL_ASSETS, schedules=[self.schedule], sensors=[s for s, _ in self.sensors], resources=resources
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
            ALL_ASSETS,
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
