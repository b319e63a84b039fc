"""The `cost_export_runs` sensor, against Azurite with the simulator's export in Microsoft's layout: a
new complete run re-rolls exactly the days it covers for the first time or restates, nothing else; an
identical run and an incomplete run start nothing."""

from datetime import date

import dagster as dg
import pytest
from azure.storage.blob import ContainerClient

from chargeback_pipeline.core.billing.pricing import load_pricing
from chargeback_pipeline.defs.automation.sensors import monthly_rollup
from chargeback_pipeline.defs.cost_export.export_runs import cost_export_runs_sensor
from chargeback_pipeline.defs.cost_export.simulated_terms import simulated_terms
from chargeback_pipeline.defs.jobs import PipelineJobs
from chargeback_pipeline.defs.resources import PricingResource
from chargeback_pipeline.sources.cost_export.resource import CostExportResource
from chargeback_pipeline.sources.simulated import SimulatedSource, SimulationProfile
from chargeback_pipeline.sources.simulated.cost_export import write_simulated_run
from chargeback_pipeline.storage.object_store import BlobObjectStore
from chargeback_pipeline_tests.conftest import ASSETS, CALENDAR, REPO

PRICING = REPO / "pricing.example.yaml"
ROOT = "billingAccounts/12345678"


def terms(day: date):
    return simulated_terms(load_pricing(PRICING), day)


@pytest.fixture
def export(azurite_connection_string):
    container = "msexports-sensor"
    store = BlobObjectStore(ContainerClient.from_connection_string(azurite_connection_string, container))
    for key in store.list_keys(""):
        store.delete(key)
    resource = CostExportResource(
        blob_connection_string=azurite_connection_string, container=container, root_folder=ROOT
    )
    return store, PricingResource(path=str(PRICING), cost_export=resource)


def _evaluate(pricing: PricingResource, cursor: str | None) -> tuple[list[dg.RunRequest], str | None]:
    sensor = cost_export_runs_sensor(CALENDAR, job=PipelineJobs.of(ASSETS).daily)
    with (
        dg.instance_for_test() as instance,
        dg.build_sensor_context(instance=instance, cursor=cursor, resources={"pricing": pricing}) as context,
    ):
        result = sensor(context)
        return ([] if isinstance(result, dg.SkipReason) else list(result)), context.cursor


def _tick(pricing: PricingResource, cursor: str | None):
    result, cursor = _evaluate(pricing, cursor)
    for request in result:
        # The day's chargeback, what states it (FOCUS export and hubs copy, budgets, anomalies), and their
        # publication.
        assert request.asset_selection == [
            dg.AssetKey(name)
            for name in ("billed_chargeback", "focus_export", "budget_status", "cost_anomalies", "day_publication")
        ]
    return [r.partition_key for r in result], cursor


def test_a_new_run_re_rolls_exactly_the_days_it_changed(export):
    store, pricing = export
    source = SimulatedSource(SimulationProfile(requests_per_hour=20))

    assert _tick(pricing, None)[0] == []  # no run yet

    write_simulated_run(store, ROOT, source, terms, date(2026, 11, 3), "run-1")  # covers 11-01 (two-day lag)
    requests, cursor = _tick(pricing, None)
    assert requests == ["2026-11-01"]
    assert _tick(pricing, cursor)[0] == []  # the same run again: nothing

    write_simulated_run(store, ROOT, source, terms, date(2026, 11, 4), "run-2")  # 11-01 unchanged, 11-02 new
    requests, cursor = _tick(pricing, cursor)
    assert requests == ["2026-11-02"]

    write_simulated_run(store, ROOT, source, terms, date(2026, 11, 4), "run-3", restated={date(2026, 11, 1): 1.2})
    requests, cursor = _tick(pricing, cursor)
    assert requests == ["2026-11-01"]

    broken = write_simulated_run(store, ROOT, source, terms, date(2026, 11, 5), "run-4")
    store.delete(f"{broken.folder}/part_0_0001.csv.gz")
    assert _tick(pricing, cursor)[0] == []  # incomplete: ignored, run-3 still counts


def test_a_restatement_back_to_earlier_numbers_is_a_run_of_its_own(export):
    # Dagster launches a run key once per sensor: a key of the day's content alone would skip the third run
    # below (the same content as the first), leaving the day published at the second run's numbers.
    store, pricing = export
    source = SimulatedSource(SimulationProfile(requests_per_hour=20))
    keys, cursor = [], None
    for run, restated in (("run-1", {}), ("run-2", {date(2026, 11, 1): 1.2}), ("run-3", {})):
        write_simulated_run(store, ROOT, source, terms, date(2026, 11, 3), run, restated=restated)
        requests, cursor = _evaluate(pricing, cursor)
        assert [r.partition_key for r in requests] == ["2026-11-01"], run
        keys += [r.run_key for r in requests]
    assert len(set(keys)) == 3
    assert keys[0].rsplit(":", 1)[0] == keys[2].rsplit(":", 1)[0]  # the same content, another run


def test_a_republished_day_re_rolls_its_month_through_the_monthly_rollup():
    """The statement reads the chargeback billed_chargeback publishes, so the monthly rollup sensor counts a
    republished day as a changed input of its month."""
    inputs = monthly_rollup(CALENDAR.daily, CALENDAR.monthly).inputs(ASSETS)
    assert dg.AssetKey("billed_chargeback") in inputs
