"""Estimate first, actual when the Cost Management export lands: end to end on the simulated tenant, with
the simulator's export in Microsoft's layout on Azurite. Per resource and day, the published actual
EffectiveCost and BilledCost equal the export's own rows (summed here from the run the simulator wrote,
not by the allocation); a restated day changes; an incomplete run is ignored; an actual day is never
replaced by an estimate."""

import json
import logging
from collections import defaultdict
from datetime import date
from decimal import ROUND_HALF_EVEN, Decimal

import dagster as dg
import pytest
from azure.storage.blob import ContainerClient

from chargeback_pipeline.cli.backfill import backfill
from chargeback_pipeline.core.billing.pricing import load_pricing
from chargeback_pipeline.defs.cost_export.simulated_terms import simulated_terms
from chargeback_pipeline.defs.resources import FocusExportResource, PricingResource
from chargeback_pipeline.sources.cost_export.resource import CostExportResource
from chargeback_pipeline.sources.simulated import SimulatedSource, SimulationProfile
from chargeback_pipeline.sources.simulated.cost_export import SimulatedAgreement, day_rows, write_simulated_run
from chargeback_pipeline.sources.simulated.resource import SimulatedSourceResource
from chargeback_pipeline.storage.object_store import BlobObjectStore
from chargeback_pipeline.storage.parquet_bytes import read_parquet_bytes
from chargeback_pipeline_tests.conftest import ASSETS, REPO, local_resources, pipeline

DAYS = [date(2026, 11, 1), date(2026, 11, 2)]
# What a day's chargeback needs, and the asset under test (the other rollups are not needed here: faster).
NEEDED = {
    "raw_gateway_logs", "raw_llm_logs", "raw_deployment_metrics", "attributed_requests", "daily_product_usage",
    "deployment_reconciliation", "daily_reconciliation", "daily_chargeback", "billed_chargeback", "monthly_statement",
    "billed_statement",
}  # fmt: skip
SUBSET = [a for a in ASSETS if {k.to_user_string() for k in a.keys} & NEEDED]
ROOT = "billingAccounts/12345678"
RATE = 60
PRICING = REPO / "pricing.example.yaml"


def terms(day: date):
    """The simulated tenant's terms of a day, from the pricing file (what write_simulated_run takes)."""
    return simulated_terms(load_pricing(PRICING), day)


def _materialize(resources: dict, instance, day: date) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        SUBSET,
        selection=["billed_chargeback"],
        partition_key=day.isoformat(),
        resources={**pipeline(resources).resources},
        instance=instance,
    )


def _published(folder, day: date):
    path = folder / "reports" / f"daily/usage_date={day}/billed_chargeback.parquet"
    return read_parquet_bytes(path.read_bytes())


def _by_resource(table) -> dict:
    totals = defaultdict(lambda: [Decimal(0), Decimal(0)])
    for row in table.to_pylist():
        totals[row["backend_id"]][0] += row["effective_cost"]
        totals[row["backend_id"]][1] += row["billed_cost"]
    return {backend: tuple(values) for backend, values in totals.items()}


def _export_by_resource(day: date, restated: float = 1) -> dict:
    """The simulator's export rows of the day per backend, summed and rounded once: the bill."""
    pricing = load_pricing(PRICING)
    backends = {b.resource_id.lower(): name for name, b in pricing.backends.items()}
    totals = defaultdict(lambda: [Decimal(0), Decimal(0)])
    source = SimulatedSource(SimulationProfile(requests_per_hour=RATE))
    for row in day_rows(source, simulated_terms(pricing, day), SimulatedAgreement(), day, restated):
        backend = backends.get(row["ResourceId"].lower())
        if backend:
            totals[backend][0] += Decimal(row["EffectiveCost"])
            totals[backend][1] += Decimal(row["BilledCost"])
    cent = Decimal("0.01")
    return {b: tuple(v.quantize(cent, ROUND_HALF_EVEN) for v in values) for b, values in totals.items()}


@pytest.fixture(scope="module")
def tenant(tmp_path_factory, azurite_connection_string):
    folder = tmp_path_factory.mktemp("actual")
    resources = local_resources(folder, SimulatedSourceResource(simulated_requests_per_hour=RATE))
    export = CostExportResource(
        blob_connection_string=azurite_connection_string, container="msexports", root_folder=ROOT
    )
    resources["pricing"] = PricingResource(path=str(PRICING), cost_export=export)
    resources["focus"] = FocusExportResource(hubs_local_dir=str(folder / "hub"), hubs_scope_path="contoso")
    store = BlobObjectStore(ContainerClient.from_connection_string(azurite_connection_string, "msexports"))
    with dg.instance_for_test() as instance:
        backfill(
            DAYS[0],
            DAYS[-1],
            dg.Definitions(assets=SUBSET, resources=pipeline(resources).resources),
            instance,
            days_per_run=2,
        )
        yield folder, resources, instance, store


def test_days_are_estimates_until_an_export_run_covers_them_then_actual_to_the_cent(tenant):
    folder, resources, instance, store = tenant
    assert {d: set(_published(folder, d)["cost_basis"].to_pylist()) for d in DAYS} == {d: {"estimate"} for d in DAYS}

    source = SimulatedSource(SimulationProfile(requests_per_hour=RATE))
    write_simulated_run(store, ROOT, source, terms, date(2026, 11, 3), "run-1")  # covers day 1
    results = {day: _materialize(resources, instance, day) for day in DAYS}

    for day in DAYS[:1]:
        published = _published(folder, day)
        assert set(published["cost_basis"].to_pylist()) == {"actual"}
        assert _by_resource(published) == _export_by_resource(day)
        assert set(published["export_run_id"].to_pylist()) == {"run-1"}
        checks = {e.check_name: e for e in results[day].get_asset_check_evaluations()}
        assert checks["actual_matches_export"].passed
        variance = (folder / "reports" / f"daily/usage_date={day}/cost_variance.csv").read_text()
        assert "variance_share" in variance.splitlines()[0]
    assert set(_published(folder, DAYS[1])["cost_basis"].to_pylist()) == {"estimate"}  # the two-day lag
    # PTU reservation: billed 0 on the resource (the purchase is on the reservation), amortized in effective.
    ptu = _by_resource(_published(folder, DAYS[0]))["aoai-ptu-eastus"]
    assert ptu[0] > 0 and ptu[1] == 0
    # The hubs copy: Microsoft's charges reallocated, so a hub holding Microsoft's own export too (the
    # simulator's full export of the day: every resource, the reservation's unused part and purchase)
    # totals Azure OpenAI exactly once; the per-product shares are tagged; every row names its source.
    ours = read_parquet_bytes(
        (folder / "hub" / f"Costs/2026/11/contoso/2026-11__actual_{DAYS[0]}.parquet").read_bytes()
    ).to_pylist()
    assert (folder / "hub" / "Costs/2026/11/contoso/manifest.json").is_file()
    assert not (folder / "hub" / f"Costs/2026/11/contoso/2026-11__focus_{DAYS[0]}.parquet").exists()
    assert {row["x_SourceName"] for row in ours} == {"Azure OpenAI chargeback"}
    microsoft = day_rows(
        SimulatedSource(SimulationProfile(requests_per_hour=RATE)), terms(DAYS[0]), SimulatedAgreement(), DAYS[0]
    )
    for column in ("EffectiveCost", "BilledCost"):
        theirs = sum(Decimal(row[column]) for row in microsoft)
        assert sum(Decimal(row[column]) for row in microsoft) + sum(row[column] for row in ours) == theirs
    products = {json.loads(row["Tags"]).get("chargeback/apim-product") for row in ours} - {None}
    assert products >= {"unattributed"} and len(products) > 3
    # The negotiated discount: the pay-as-you-go actual is below the pricing file's estimate.
    paygo = [r for r in _published(folder, DAYS[0]).to_pylist() if r["backend_id"] == "aoai-paygo-eastus"]
    assert sum(r["effective_cost"] for r in paygo) < sum(r["estimated_cost"] for r in paygo)


def test_a_restating_run_changes_that_day_and_an_incomplete_run_is_ignored(tenant, caplog):
    folder, resources, instance, store = tenant
    source = SimulatedSource(SimulationProfile(requests_per_hour=RATE))
    write_simulated_run(store, ROOT, source, terms, date(2026, 11, 3), "run-1")
    # A day later: day 1 restated (its pay-as-you-go usage corrected), day 2 covered for the first time.
    write_simulated_run(store, ROOT, source, terms, date(2026, 11, 4), "run-2", restated={DAYS[0]: 1.5})
    # A newer run whose part went missing: never read.
    broken = write_simulated_run(store, ROOT, source, terms, date(2026, 11, 5), "run-3")
    store.delete(f"{broken.folder}/part_0_0001.csv.gz")
    with caplog.at_level(logging.WARNING):
        for day in DAYS:
            _materialize(resources, instance, day)
    assert "run run-3 (2026-11-01..2026-11-30) is incomplete" in caplog.text
    assert _by_resource(_published(folder, DAYS[0])) == _export_by_resource(DAYS[0], 1.5)
    assert _by_resource(_published(folder, DAYS[0])) != _export_by_resource(DAYS[0])
    assert _by_resource(_published(folder, DAYS[1])) == _export_by_resource(DAYS[1])
    assert {frozenset(_published(folder, day)["export_run_id"].to_pylist()) for day in DAYS} == {frozenset({"run-2"})}


def test_an_actual_day_is_never_replaced_by_an_estimate(tenant):
    folder, resources, instance, _ = tenant
    before = (folder / "reports" / f"daily/usage_date={DAYS[0]}/billed_chargeback.parquet").read_bytes()
    without_export = {**resources, "pricing": PricingResource(path=str(PRICING))}
    result = _materialize(without_export, instance, DAYS[0])
    assert result.success
    assert (folder / "reports" / f"daily/usage_date={DAYS[0]}/billed_chargeback.parquet").read_bytes() == before


def test_the_month_sums_its_billed_days_and_counts_the_actual_ones(tenant):
    folder, resources, instance, _ = tenant
    result = dg.materialize(
        SUBSET,
        selection=["billed_statement"],
        partition_key="2026-11-01",
        resources={**pipeline(resources).resources},
        instance=instance,
    )
    assert result.success
    statement = read_parquet_bytes((folder / "reports" / "monthly/month=2026-11/billed_statement.parquet").read_bytes())
    days = [_published(folder, day).to_pylist() for day in DAYS]
    for row in statement.to_pylist():
        lines = [line for day in days for line in day if line["product_id"] == row["product_id"]]
        assert row["effective_cost"] == sum(line["effective_cost"] for line in lines)
        assert row["billed_cost"] == sum(line["billed_cost"] for line in lines)
        assert row["actual_days"] == len({line["usage_date"] for line in lines}) and row["estimate_days"] == 0
