"""The FinOps hubs copy, end to end on a real Azurite: the layout and file format a FinOps hub ingests.

The layout is the hub's own (microsoft/finops-toolkit, docs-mslearn/toolkit/hubs/data-processing.md, "About
the ingestion container", hub v14): `ingestion/{dataset}/{yyyy}/{mm}/{scope-path}/{ingestion-id}__{name}
.parquet`, plus an empty `manifest.json` after the files, which starts the Data Explorer ingestion of the
folder. The columns are read by the hub's `Costs_raw_mapping` (src/templates/finops-hub/modules/
Microsoft.FinOpsHubs/Analytics/scripts/IngestionSetup_RawTables.kql): every FOCUS column the copy holds must
be one it maps, or the hub drops it.
"""

import io
import shutil
from collections import defaultdict
from datetime import date
from decimal import Decimal

import dagster as dg
import pyarrow.parquet as pq
import pytest
from azure.storage.blob import ContainerClient

from chargeback_pipeline.cli.backfill import backfill
from chargeback_pipeline.definitions import build_resources
from chargeback_pipeline.defs.resources import FocusExportResource
from chargeback_pipeline.settings import SettingsError, load_settings
from chargeback_pipeline.sources.simulated.resource import SimulatedSourceResource
from chargeback_pipeline_tests.conftest import ASSETS, local_resources, pipeline

DAYS = [date(2026, 11, 19), date(2026, 11, 20)]
SCOPE = "contoso/apim-prod"
FOLDER = f"Costs/2026/11/{SCOPE}"
# The FOCUS columns of hub v14's Costs_raw_mapping that a FOCUS 1.2 dataset can carry (the mapping also
# holds older and provider-specific names).
HUB_COSTS_COLUMNS = {
    "AvailabilityZone", "BilledCost", "BillingAccountId", "BillingAccountName", "BillingAccountType",
    "BillingCurrency", "BillingPeriodEnd", "BillingPeriodStart", "CapacityReservationId",
    "CapacityReservationStatus", "ChargeCategory", "ChargeClass", "ChargeDescription", "ChargeFrequency",
    "ChargePeriodEnd", "ChargePeriodStart", "CommitmentDiscountCategory", "CommitmentDiscountId",
    "CommitmentDiscountName", "CommitmentDiscountQuantity", "CommitmentDiscountStatus", "CommitmentDiscountType",
    "CommitmentDiscountUnit", "ConsumedQuantity", "ConsumedUnit", "ContractedCost", "ContractedUnitPrice",
    "EffectiveCost", "InvoiceId", "InvoiceIssuerName", "ListCost", "ListUnitPrice", "PricingCategory",
    "PricingCurrency", "PricingQuantity", "PricingUnit", "ProviderName", "PublisherName", "RegionId",
    "RegionName", "ResourceId", "ResourceName", "ResourceType", "ServiceCategory", "ServiceName",
    "ServiceSubcategory", "SkuId", "SkuMeter", "SkuPriceDetails", "SkuPriceId", "SubAccountId", "SubAccountName",
    "SubAccountType", "Tags",
}  # fmt: skip


@pytest.fixture(scope="module")
def published(tmp_path_factory, azurite_connection_string):
    folder = tmp_path_factory.mktemp("hubs")
    resources = local_resources(folder, SimulatedSourceResource(simulated_requests_per_hour=100))
    resources["focus"] = FocusExportResource(
        hubs_blob_connection_string=azurite_connection_string, hubs_scope_path=SCOPE
    )
    container = ContainerClient.from_connection_string(azurite_connection_string, "ingestion")
    markers = []  # the month's manifest after each run: one run a day, as the daily schedule publishes

    def after_run(_chunk) -> None:
        markers.append(container.get_blob_client(f"{FOLDER}/manifest.json").get_blob_properties())

    with dg.instance_for_test() as instance:
        chunks = backfill(DAYS[0], DAYS[-1], pipeline(resources), instance, on_chunk=after_run)
        # this test's scope only: other tests publish their own scopes into the shared Azurite's container
        first = {b.name: b for b in container.list_blobs(name_starts_with=f"{FOLDER}/")}
        # Run again: the same bytes, so the hub is not asked to ingest again (the manifest stays as it was).
        backfill(DAYS[0], DAYS[-1], pipeline(resources), instance, days_per_run=2)
        second = {b.name: b for b in container.list_blobs(name_starts_with=f"{FOLDER}/")}
    return folder, chunks, container, first, second, markers


def test_the_month_folder_holds_one_file_per_day_and_an_empty_manifest(published):
    _, chunks, _, first, second, markers = published
    files = {f"{FOLDER}/2026-11__focus_{day}.parquet" for day in DAYS}
    assert set(first) == files | {f"{FOLDER}/manifest.json"}
    assert first[f"{FOLDER}/manifest.json"].size == 0
    # The manifest comes after the data: the hub starts ingesting the folder when it appears.
    assert all(first[f"{FOLDER}/manifest.json"].last_modified >= first[name].last_modified for name in files)
    # Each run that adds a day creates the manifest anew (the hub reacts to a created blob; an empty file
    # rewritten with the same bytes would not be written at all, and the hub would never ingest day two).
    assert len(markers) == 2 and markers[1].etag != markers[0].etag
    assert markers[1].creation_time > markers[0].creation_time
    # Run again: the same bytes, so nothing is rewritten and the hub is not asked to ingest again.
    assert set(second) == set(first)
    assert {n: b.etag for n, b in second.items()} == {n: b.etag for n, b in first.items()}
    assert all(chunk.check_evaluations()["focus_export:focus_matches_chargeback"].passed for chunk in chunks)


def test_the_hub_files_are_focus_parquet_the_hub_maps_and_bill_the_chargeback(published):
    folder, _, container, _, _, _ = published
    for day in DAYS:
        data = container.download_blob(f"{FOLDER}/2026-11__focus_{day}.parquet").readall()
        table = pq.read_table(io.BytesIO(data))
        focus_columns = {c for c in table.column_names if not c.startswith("x_")}
        assert focus_columns <= HUB_COSTS_COLUMNS, focus_columns - HUB_COSTS_COLUMNS
        assert {"BilledCost", "EffectiveCost", "ChargePeriodStart", "SubAccountName", "Tags"} <= focus_columns
        chargeback = pq.read_table(folder / "reports" / f"daily/usage_date={day}/chargeback.parquet")
        # Costs per APIM product (SubAccountName in the hub's reports), to the cent of the chargeback.
        per_product = defaultdict(Decimal)
        for row in table.to_pylist():
            per_product[row["SubAccountName"]] += row["BilledCost"]
        expected = defaultdict(Decimal)
        for row in chargeback.to_pylist():
            expected[row["product_id"]] += row["total_cost"]
        assert per_product == expected and len(expected) > 3


def test_the_export_itself_is_focus_1_3_summing_to_each_origin_charge(published):
    folder, _, _, _, _, _ = published
    for day in DAYS:
        focus = pq.read_table(folder / "reports" / f"daily/usage_date={day}/focus.parquet")
        split = pq.read_table(folder / "lake" / f"daily_chargeback/usage_date={day}/origin_allocations.parquet")
        assert "ServiceProviderName" in focus.column_names and "AllocatedMethodId" in focus.column_names
        rows = defaultdict(Decimal)
        for row in focus.to_pylist():
            rows[row["x_OriginChargeId"]] += row["BilledCost"]
        origins = {}
        for row in split.to_pylist():
            origin = f"{row['backend_id']}/{row['deployment_name']}/{row['origin_kind']}/"
            origins[origin + f"{row['charge_period_start']:%Y-%m-%dT%H}"] = row["origin_cost"]
        assert rows == origins
        # Every PTU deployment's 24 hours are origins (charged used or not).
        assert sum(1 for origin in origins if "/ptu/" in origin) % 24 == 0
        chargeback = pq.read_table(folder / "reports" / f"daily/usage_date={day}/chargeback.parquet")
        assert sum(rows.values()) == sum(chargeback["total_cost"].to_pylist())


def test_focus_1_2_stays_available_by_the_setting(published, tmp_path):
    # The same published days, exported again as FOCUS 1.2 into another report folder (the lake copied, so
    # the module's files stay as they were): one row per chargeback line, the product as the sub account.
    folder, _, _, _, _, _ = published
    shutil.copytree(folder / "lake", tmp_path / "lake")
    resources = local_resources(tmp_path, SimulatedSourceResource(simulated_requests_per_hour=100))
    resources["focus"] = FocusExportResource(version="1.2")
    with dg.instance_for_test() as instance:
        result = dg.materialize(
            # The export is staged; the day's publication decision publishes it (issue 24).
            ASSETS,
            selection=["focus_export", "day_publication"],
            partition_key=str(DAYS[0]),
            resources=resources,
            instance=instance,
        )
    assert result.success
    [evaluation] = result.get_asset_check_evaluations()
    assert evaluation.passed
    focus = pq.read_table(tmp_path / "reports" / f"daily/usage_date={DAYS[0]}/focus.parquet")
    chargeback = pq.read_table(folder / "reports" / f"daily/usage_date={DAYS[0]}/chargeback.parquet")
    assert focus.num_rows == chargeback.num_rows
    assert "AllocatedMethodId" not in focus.column_names and "InvoiceId" in focus.column_names
    assert focus["SubAccountId"].to_pylist() == chargeback["product_id"].to_pylist()
    assert not (tmp_path / "hub").exists()  # no hubs target: no hubs copy


def test_settings_choose_the_version_and_the_hubs_target(monkeypatch, tmp_path):
    monkeypatch.setenv("CHARGEBACK_FOCUS_VERSION", "1.1")
    with pytest.raises(SettingsError, match="CHARGEBACK_FOCUS_VERSION"):
        load_settings()
    monkeypatch.setenv("CHARGEBACK_FOCUS_VERSION", "1.2")
    monkeypatch.setenv("CHARGEBACK_FINOPS_HUBS_CONNECTION_STRING", "UseDevelopmentStorage=true")
    monkeypatch.setenv("CHARGEBACK_FINOPS_HUBS_SCOPE_PATH", "contoso/apim-prod")
    focus = build_resources(load_settings())["focus"]
    assert (focus.version, focus.hubs_scope_path) == ("1.2", "contoso/apim-prod")
    # The secret reaches the resource as an EnvVar, resolved at run time, never as its value.
    assert isinstance(focus.hubs_blob_connection_string, dg.EnvVar)
    monkeypatch.setenv("CHARGEBACK_FINOPS_HUBS_SCOPE_PATH", "../escape")
    with pytest.raises(SettingsError, match="CHARGEBACK_FINOPS_HUBS_SCOPE_PATH"):
        load_settings()
    monkeypatch.delenv("CHARGEBACK_FINOPS_HUBS_SCOPE_PATH")
    monkeypatch.setenv("CHARGEBACK_FINOPS_HUBS_BLOB_ACCOUNT_URL", "http://hub.example.com")
    with pytest.raises(SettingsError, match="CHARGEBACK_FINOPS_HUBS_BLOB_ACCOUNT_URL"):
        load_settings()


def test_the_check_compares_each_kind_of_row_with_its_own_reference_from_the_files(published, tmp_path):
    # Each number the check shows, recomputed from the published files: the export's rows (each is one
    # product's share of one origin charge) sum to the chargeback, the origins' costs from the persisted split,
    # the hubs copy from the hub's file. None of them is the sum of the three kinds (the day counted 3 times).
    folder, chunks, container, _, _, _ = published
    evaluations = {
        e.partition: e
        for chunk in chunks
        for e in chunk.daily.get_asset_check_evaluations()
        if e.check_name == "focus_matches_chargeback"
    }
    for day in DAYS:
        metadata = {name: entry.value for name, entry in evaluations[str(day)].metadata.items()}
        chargeback = sum(
            pq.read_table(folder / "reports" / f"daily/usage_date={day}/chargeback.parquet")["total_cost"].to_pylist()
        )
        focus = sum(
            pq.read_table(folder / "reports" / f"daily/usage_date={day}/focus.parquet")["BilledCost"].to_pylist()
        )
        split = pq.read_table(folder / "lake" / f"daily_chargeback/usage_date={day}/origin_allocations.parquet")
        origin = ("backend_id", "deployment_name", "origin_kind", "charge_period_start")
        origins = sum({tuple(r[c] for c in origin): r["origin_cost"] for r in split.to_pylist()}.values())
        hub = pq.read_table(io.BytesIO(container.download_blob(f"{FOLDER}/2026-11__focus_{day}.parquet").readall()))
        shown = {
            "product_rows_cost": focus,
            "product_rows_reference_cost": chargeback,
            "origin_charges_cost": focus,
            "origin_charges_reference_cost": origins,
            "hubs_copy_cost": sum(hub["BilledCost"].to_pylist()),
            "hubs_copy_reference_cost": chargeback,
        }
        assert {name: metadata[name] for name in shown} == {name: f"{v:,.2f} USD" for name, v in shown.items()}
        assert chargeback > 0 and metadata["currency"] == "USD" and evaluations[str(day)].passed
        assert "published_total_cost" not in metadata  # the old sum of all three kinds
