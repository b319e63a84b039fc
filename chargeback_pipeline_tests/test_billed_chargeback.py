"""Estimate first, actual when the Cost Management export lands: end to end on the simulated tenant through
Azurite (the simulator's export in Microsoft's layout, the reports and the FinOps hub on Blob). Per
resource and day, the published actual EffectiveCost and BilledCost equal the export's own rows (summed
here from what the simulator wrote, not by the allocation) in the one chargeback, the FOCUS export, the hubs
copy and the monthly statement; a restated day is republished with its month and nothing else; an
incomplete run is ignored; an actual day is never replaced by an estimate."""

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
from chargeback_pipeline.defs.resources import FocusExportResource, ObjectStoreResource, PricingResource
from chargeback_pipeline.sources.cost_export.resource import CostExportResource
from chargeback_pipeline.sources.simulated import SimulatedSource, SimulationProfile
from chargeback_pipeline.sources.simulated.cost_export import (
    RESERVATION_ID,
    SimulatedAgreement,
    day_rows,
    write_simulated_run,
)
from chargeback_pipeline.sources.simulated.resource import SimulatedSourceResource
from chargeback_pipeline.storage.object_store import BlobObjectStore
from chargeback_pipeline.storage.parquet_bytes import read_parquet_bytes
from chargeback_pipeline_tests.conftest import ASSETS, REPO, local_resources, pipeline

DAYS = [date(2026, 11, 1), date(2026, 11, 2)]
MONTH = "monthly/month=2026-11"
# What a day's chargeback needs, what publishes it, and the month (the other rollups are not needed: faster).
NEEDED = {
    "raw_gateway_logs", "raw_llm_logs", "raw_deployment_metrics", "attributed_requests", "daily_product_usage",
    "deployment_reconciliation", "daily_reconciliation", "daily_chargeback", "billed_chargeback", "focus_export",
    "day_publication", "monthly_statement", "month_publication",
}  # fmt: skip
SUBSET = [a for a in ASSETS if {k.to_user_string() for k in a.keys} & NEEDED]
# What the cost_export_runs sensor runs for a day (but budgets and anomalies: not needed here).
REPUBLISHED = ["billed_chargeback", "focus_export", "day_publication"]
ROOT = "billingAccounts/12345678"
RATE = 60
PRICING = REPO / "pricing.example.yaml"
SCOPE = "contoso-actual"
HUB_FOLDER = f"Costs/2026/11/{SCOPE}"


def terms(day: date):
    """The simulated tenant's terms of a day, from the pricing file (what write_simulated_run takes)."""
    return simulated_terms(load_pricing(PRICING), day)


def _materialize(resources: dict, instance, day: date, selection=REPUBLISHED) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        SUBSET,
        selection=selection,
        partition_key=day.isoformat(),
        resources={**pipeline(resources).resources},
        instance=instance,
    )


def _state_month(resources: dict, instance) -> dg.ExecuteInProcessResult:
    return _materialize(resources, instance, DAYS[0], ["monthly_statement", "month_publication"])


def _file(store: BlobObjectStore, key: str):
    return read_parquet_bytes(store.read_bytes(key))


def _chargeback(reports: BlobObjectStore, day: date):
    return _file(reports, f"daily/usage_date={day}/chargeback.parquet")


def _by_resource(rows, backend="backend_id", effective="total_cost", billed="billed_cost") -> dict:
    totals = defaultdict(lambda: [Decimal(0), Decimal(0)])
    for row in rows:
        totals[row[backend]][0] += row[effective]
        totals[row[backend]][1] += row[billed]
    return {name: tuple(values) for name, values in totals.items()}


def _export_by_resource(day: date, restated: float = 1, columns=("EffectiveCost", "BilledCost")) -> dict:
    """The simulator's export rows of the day per backend, summed and rounded once: the bill (`columns`, by
    default effective and billed). Under None the PTU reservation's unused part (its own rows, no backend's)."""
    pricing = load_pricing(PRICING)
    backends = {b.resource_id.lower(): name for name, b in pricing.backends.items()}
    totals = defaultdict(lambda: [Decimal(0), Decimal(0)])
    source = SimulatedSource(SimulationProfile(requests_per_hour=RATE))
    for row in day_rows(source, simulated_terms(pricing, day), SimulatedAgreement(), day, restated):
        backend = backends.get(row["ResourceId"].lower())
        if backend or row.get("CommitmentDiscountStatus") == "Unused":
            for i, column in enumerate(columns):
                totals[backend][i] += Decimal(row[column])
    cent = Decimal("0.01")
    return {b: tuple(v.quantize(cent, ROUND_HALF_EVEN) for v in values) for b, values in totals.items()}


def _fresh(connection_string: str, container: str) -> BlobObjectStore:
    store = BlobObjectStore(ContainerClient.from_connection_string(connection_string, container))
    for key in store.list_keys(""):
        store.delete(key)
    return store


@pytest.fixture(scope="module")
def tenant(tmp_path_factory, azurite_connection_string):
    folder = tmp_path_factory.mktemp("actual")
    resources = local_resources(folder, SimulatedSourceResource(simulated_requests_per_hour=RATE))
    reports = _fresh(azurite_connection_string, "reports-actual")
    resources["reports"] = ObjectStoreResource(
        blob_connection_string=azurite_connection_string, blob_container="reports-actual"
    )
    export = CostExportResource(
        blob_connection_string=azurite_connection_string, container="msexports", root_folder=ROOT
    )
    resources["pricing"] = PricingResource(path=str(PRICING), cost_export=export)
    resources["focus"] = FocusExportResource(
        hubs_blob_connection_string=azurite_connection_string, hubs_scope_path=SCOPE
    )
    store = _fresh(azurite_connection_string, "msexports")
    hub = BlobObjectStore(ContainerClient.from_connection_string(azurite_connection_string, "ingestion"))
    for key in hub.list_keys(f"{HUB_FOLDER}/"):
        hub.delete(key)
    with dg.instance_for_test() as instance:
        backfill(
            DAYS[0],
            DAYS[-1],
            dg.Definitions(assets=SUBSET, resources=pipeline(resources).resources),
            instance,
            days_per_run=2,
        )
        yield resources, instance, store, reports, hub


def test_days_are_estimates_until_an_export_run_covers_them_then_actual_to_the_cent_everywhere(tenant):
    resources, instance, store, reports, hub = tenant
    for day in DAYS:  # estimates, said in every file; nothing claimed in the hub
        assert set(_chargeback(reports, day)["cost_basis"].to_pylist()) == {"estimate"}
        assert set(_file(reports, f"daily/usage_date={day}/focus.parquet")["x_CostBasis"].to_pylist()) == {"estimate"}
    assert not hub.list_keys(f"{HUB_FOLDER}/")
    assert not reports.exists(f"daily/usage_date={DAYS[0]}/billed_chargeback.parquet")  # one chargeback

    source = SimulatedSource(SimulationProfile(requests_per_hour=RATE))
    write_simulated_run(store, ROOT, source, terms, date(2026, 11, 3), "run-1")  # covers day 1
    results = {day: _materialize(resources, instance, day) for day in DAYS}
    assert _state_month(resources, instance).success

    day = DAYS[0]
    export = _export_by_resource(day)
    chargeback = _chargeback(reports, day)
    assert set(chargeback["cost_basis"].to_pylist()) == {"actual"}
    assert set(chargeback["export_run_id"].to_pylist()) == {"run-1"}
    assert _by_resource(chargeback.to_pylist()) == export
    checks = {e.check_name: e for e in results[day].get_asset_check_evaluations()}
    assert checks["actual_matches_export"].passed and checks["focus_matches_chargeback"].passed
    assert "variance_share" in reports.read_bytes(f"daily/usage_date={day}/cost_variance.csv").decode().splitlines()[0]
    # PTU reservation: billed 0 on the resource (the purchase is on the reservation), amortized in effective;
    # its unused part (reserved PTU-hours no deployment used) is the platform's unused PTU cost.
    ptu = export["aoai-ptu-eastus"]
    assert ptu[0] > 0 and ptu[1] == 0 and export[None][0] > 0
    [idle] = [row for row in chargeback.to_pylist() if row["backend_id"] is None]
    assert (idle["product_id"], idle["cost_type"], idle["total_cost"]) == (
        "platform-unallocated", "ptu_unused", export[None][0]
    )  # fmt: skip
    # No estimate holds a reservation's unused part: the variance check names it apart, never as a variance.
    variance = checks["estimate_variance_within_share"].metadata
    assert variance["unused_commitment_cost_not_compared"].value == f"{export[None][0]:,.2f} USD"
    over = variance["products_over"].value if "products_over" in variance else []  # an empty list is dropped
    assert "platform-unallocated" not in {row["product_id"] for row in over}

    # The FOCUS export states the same actual charges: per resource to the cent, the export's invoice,
    # origin charges named by the export's identifiers, FOCUS 1.3 allocation columns.
    focus = _file(reports, f"daily/usage_date={day}/focus.parquet").to_pylist()
    assert _by_resource(focus, "x_BackendId", "EffectiveCost", "BilledCost") == export
    assert {row["x_CostBasis"] for row in focus} == {"actual"}
    assert {(row["InvoiceId"], row["InvoiceIssuerName"]) for row in focus} == {("G000123456", "Microsoft")}
    assert all(row["x_OriginChargeId"].startswith(row["ResourceId"].lower()) for row in focus)
    assert all("|meter=sim-meter/" in row["x_OriginChargeId"] and row["SkuMeter"] for row in focus)
    # (At this rate nothing spills over to gpt-4.1 / gpt-4o pay-as-you-go: their meters bill 0, unattributed.)
    assert {row["AllocatedMethodId"] for row in focus} >= {
        "azure-cost-export-tokens-by-prompt-tokens",
        "azure-cost-export-ptu-hours-by-weighted-usage",
    }
    for row in focus:
        details = json.loads(row["AllocatedMethodDetails"])
        assert 0 <= Decimal(str(details["Elements"][0]["AllocatedRatio"])) <= 1
        assert (row["AllocatedResourceName"] is None) == (
            row["x_ApiManagementProductId"] in ("unattributed", "logged-not-billable", "platform-unallocated")
        )
    commitment = [row for row in focus if row["CommitmentDiscountId"]]
    assert {row["CommitmentDiscountStatus"] for row in commitment} == {"Used", "Unused"}
    assert {row["CommitmentDiscountId"] for row in commitment} == {RESERVATION_ID}
    assert {row["PricingUnit"] for row in commitment} == {"Hours"}  # PTU-hours, as the export prices them
    estimate_focus = _file(reports, f"daily/usage_date={DAYS[1]}/focus.parquet")
    assert set(estimate_focus["x_CostBasis"].to_pylist()) == {"estimate"}  # the two-day lag

    # The hubs copy: Microsoft's charges reallocated, so a hub holding Microsoft's own export too (the
    # simulator's full export of the day: every resource, the reservation's unused part and purchase)
    # totals Azure OpenAI exactly once; the per-product shares are tagged and sum, per resource, to the
    # export to the cent; every row names its source. Estimate days are not in the hub.
    ours = _file(hub, f"{HUB_FOLDER}/2026-11__focus_{day}.parquet").to_pylist()
    assert hub.exists(f"{HUB_FOLDER}/manifest.json")
    assert not hub.exists(f"{HUB_FOLDER}/2026-11__focus_{DAYS[1]}.parquet")
    assert {row["x_SourceName"] for row in ours} == {"Azure OpenAI chargeback"}
    shares = [row | {"backend": json.loads(row["Tags"]).get("chargeback/backend")} for row in ours]
    product_rows = [row for row in ours if row["x_ApiManagementProductId"]]
    assert sum(r["EffectiveCost"] for r in product_rows) == sum(v[0] for v in export.values())
    assert sum(r["BilledCost"] for r in product_rows) == sum(v[1] for v in export.values())
    microsoft = day_rows(source, terms(day), SimulatedAgreement(), day)
    for column in ("EffectiveCost", "BilledCost", "ListCost", "ContractedCost"):
        theirs = sum(Decimal(row[column]) for row in microsoft)
        assert theirs + sum(row[column] for row in shares) == theirs, column
    # A hub's savings (ListCost - EffectiveCost) are the export's: the products' shares of its ListCost and
    # ContractedCost, per resource to the cent; its negotiated pay-as-you-go discount shows.
    listed = _export_by_resource(day, columns=("ListCost", "ContractedCost"))
    assert sum(r["ListCost"] for r in product_rows) == sum(v[0] for v in listed.values())
    assert sum(r["ContractedCost"] for r in product_rows) == sum(v[1] for v in listed.values())
    assert sum(r["ListCost"] for r in product_rows) > sum(r["EffectiveCost"] for r in product_rows)
    products = {json.loads(row["Tags"]).get("chargeback/apim-product") for row in ours} - {None}
    assert products >= {"unattributed"} and len(products) > 3

    # The monthly statement: the actual day and the estimate day, each as published.
    statement = _file(reports, f"{MONTH}/statement.parquet").to_pylist()
    days = [_chargeback(reports, d).to_pylist() for d in DAYS]
    assert sum(r["total_cost"] for r in statement) == sum(v[0] for v in export.values()) + sum(
        line["total_cost"] for line in days[1]
    )
    assert sum(r["billed_cost"] for r in statement) == sum(v[1] for v in export.values()) + sum(
        line["billed_cost"] for line in days[1]
    )
    [platform] = [row for row in statement if row["product_id"] == "platform-unallocated"]
    assert platform["ptu_unused_cost"] >= export[None][0]  # the unused commitment, on the statement
    for row in statement:
        lines = [line for d in days for line in d if line["product_id"] == row["product_id"]]
        assert row["actual_days"] == len({line["usage_date"] for line in lines if line["cost_basis"] == "actual"})
        assert row["estimate_days"] == len({line["usage_date"] for line in lines if line["cost_basis"] == "estimate"})
    assert not reports.exists(f"{MONTH}/billed_statement.parquet")
    # The negotiated discount: the pay-as-you-go actual is below the pricing file's estimate.
    paygo = [r for r in days[0] if r["backend_id"] == "aoai-paygo-eastus"]
    assert sum(r["total_cost"] for r in paygo) < sum(r["estimated_cost"] for r in paygo)


def _snapshot(reports: BlobObjectStore, prefix: str) -> dict:
    return {key: reports.read_bytes(key) for key in reports.list_keys(prefix) if "/_staging/" not in key}


def test_a_restating_run_republishes_that_day_and_its_month_and_nothing_else(tenant, caplog):
    resources, instance, store, reports, hub = tenant
    source = SimulatedSource(SimulationProfile(requests_per_hour=RATE))
    write_simulated_run(store, ROOT, source, terms, date(2026, 11, 4), "run-2")  # day 2 covered too
    for day in DAYS:
        _materialize(resources, instance, day)
    _state_month(resources, instance)
    before = {day: _snapshot(reports, f"daily/usage_date={day}/") for day in DAYS}
    month_before = _snapshot(reports, f"{MONTH}/")
    hub_before = _snapshot(hub, f"{HUB_FOLDER}/")

    # A day later: day 1 restated (its pay-as-you-go usage corrected), and a newer run whose part went
    # missing: never read.
    write_simulated_run(store, ROOT, source, terms, date(2026, 11, 5), "run-3", restated={DAYS[0]: 1.5})
    broken = write_simulated_run(store, ROOT, source, terms, date(2026, 11, 6), "run-4")
    store.delete(f"{broken.folder}/part_0_0001.csv.gz")
    with caplog.at_level(logging.WARNING):
        # What the cost_export_runs sensor asks for (test_cost_export_sensor.py): day 1 only.
        _materialize(resources, instance, DAYS[0])
        _state_month(resources, instance)
    assert "run run-4 (2026-11-01..2026-11-30) is incomplete" in caplog.text
    after = {day: _snapshot(reports, f"daily/usage_date={day}/") for day in DAYS}
    assert after[DAYS[1]] == before[DAYS[1]]  # nothing else
    changed = {key for key in after[DAYS[0]] if after[DAYS[0]][key] != before[DAYS[0]].get(key)}
    assert {key.rsplit("/", 1)[-1] for key in changed} >= {
        "chargeback.parquet", "chargeback.csv", "focus.parquet", "focus.csv", "_publication.json"
    }  # fmt: skip
    assert _by_resource(_chargeback(reports, DAYS[0]).to_pylist()) == _export_by_resource(DAYS[0], 1.5)
    assert _by_resource(_chargeback(reports, DAYS[0]).to_pylist()) != _export_by_resource(DAYS[0])
    assert set(_chargeback(reports, DAYS[0])["export_run_id"].to_pylist()) == {"run-3"}
    focus = _file(reports, f"daily/usage_date={DAYS[0]}/focus.parquet").to_pylist()
    assert _by_resource(focus, "x_BackendId", "EffectiveCost", "BilledCost") == _export_by_resource(DAYS[0], 1.5)
    month_after = _snapshot(reports, f"{MONTH}/")
    assert month_after[f"{MONTH}/statement.parquet"] != month_before[f"{MONTH}/statement.parquet"]
    hub_after = _snapshot(hub, f"{HUB_FOLDER}/")
    assert (
        hub_after[f"{HUB_FOLDER}/2026-11__focus_{DAYS[1]}.parquet"]
        == hub_before[f"{HUB_FOLDER}/2026-11__focus_{DAYS[1]}.parquet"]
    )
    assert (
        hub_after[f"{HUB_FOLDER}/2026-11__focus_{DAYS[0]}.parquet"]
        != hub_before[f"{HUB_FOLDER}/2026-11__focus_{DAYS[0]}.parquet"]
    )


def test_an_actual_day_is_never_replaced_by_an_estimate(tenant):
    resources, instance, _, reports, _ = tenant
    before = _snapshot(reports, f"daily/usage_date={DAYS[0]}/")
    assert "actual" in set(_chargeback(reports, DAYS[0])["cost_basis"].to_pylist())
    without_export = {**resources, "pricing": PricingResource(path=str(PRICING))}
    result = _materialize(without_export, instance, DAYS[0])
    assert result.success
    assert _snapshot(reports, f"daily/usage_date={DAYS[0]}/") == before
