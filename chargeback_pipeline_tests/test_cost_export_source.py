"""The Cost Management export source, against Azurite (and a folder) with Microsoft's run layout and
manifest: the newest complete run per billing period, incomplete runs ignored with a log line, unknown
schema versions refused, only the named resources' rows read (ARM ids case-insensitive)."""

import logging
import re
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from azure.storage.blob import ContainerClient

from chargeback_pipeline.sources.cost_export.manifest import CostExportError, UnknownSchemaVersionError
from chargeback_pipeline.sources.cost_export.source import CostExportSource
from chargeback_pipeline.sources.simulated.cost_export_files import (
    RunSpec,
    export_columns,
    export_row,
    write_export_run,
)
from chargeback_pipeline.storage.object_store import BlobObjectStore, LocalObjectStore

SUBSCRIPTION = "/subscriptions/00000000-0000-0000-0000-000000000000"
PTU = f"{SUBSCRIPTION}/resourceGroups/rg-ai/providers/Microsoft.CognitiveServices/accounts/aoai-ptu-eastus"
OTHER = f"{SUBSCRIPTION}/resourceGroups/rg-web/providers/Microsoft.Web/sites/shop"


def _row(
    version: str, resource_id: str, day: int, cost: str, meter: str = "gpt 4.1 Inpt glbl 1M Tokens", **values: str
) -> dict:
    start = datetime(2026, 3, day, tzinfo=UTC)
    return export_row(
        version,
        {
            "billing_account_id": "/providers/Microsoft.Billing/billingAccounts/1234",
            "billing_currency": "USD",
            "billing_period_start": datetime(2026, 3, 1, tzinfo=UTC),
            "charge_period_start": start,
            "charge_period_end": start.replace(day=day + 1),
            "charge_category": "Usage",
            "charge_description": meter,
            "pricing_category": "Standard",
            "resource_id": resource_id,
            "sub_account_id": "/subscriptions/00000000-0000-0000-0000-000000000000",
            "meter_id": "11111111-2222-3333-4444-555555555555",
            "sku_price_id": "DZH318Z0BQ4L/000G",
            "consumed_quantity": "1500",
            "consumed_unit": "Tokens",
            "pricing_quantity": "0.0015",
            "pricing_unit": "1M Tokens",
            "billed_cost": cost,
            "effective_cost": cost,
            "list_cost": cost,
            "contracted_cost": cost,
            "invoice_id": "G123456789",
            "invoice_issuer_name": "Microsoft",
            "meter_name": meter,
            **values,
        },
    )


def _spec(run_id: str, hour: int, **changes) -> RunSpec:
    settings = {
        "root": "billingAccounts/1234",
        "export_name": "focus-daily",
        "period_start": date(2026, 3, 1),
        "period_end": date(2026, 3, 31),
        "run_id": run_id,
        "submitted": datetime(2026, 3, 6, hour, tzinfo=UTC),
        **changes,
    }
    return RunSpec(**settings)


@pytest.fixture
def blob_store(azurite_connection_string, request):
    container = ContainerClient.from_connection_string(
        azurite_connection_string, f"msexports-{abs(hash(request.node.name)) % 10**8}"
    )
    return BlobObjectStore(container)


@pytest.mark.parametrize("version,file_format", [("1.2-preview", "csv.gz"), ("1.0", "parquet"), ("1.0r2", "csv")])
def test_newest_complete_run_of_the_month_is_read_for_the_named_resources_only(
    blob_store, version, file_format, caplog
):
    columns = export_columns(version)
    older = [_row(version, PTU, 3, "10.00"), _row(version, OTHER, 3, "99.00")]
    write_export_run(blob_store, _spec("run-old", 1, schema_version=version, file_format=file_format), older, columns)
    # The newest run restates day 3, adds day 4, spans two parts, and names the resource in another case.
    newer = [_row(version, PTU.upper(), 3, "12.50"), _row(version, OTHER, 4, "1"), _row(version, PTU, 4, "1.2E-05")]
    write_export_run(
        blob_store,
        _spec("run-new", 2, schema_version=version, file_format=file_format, rows_per_part=2),
        newer,
        columns,
    )
    # An even newer run whose parts are still being written: no manifest yet.
    blob_store.write_bytes("billingAccounts/1234/focus-daily/20260301-20260331/run-writing/part_0_0001.csv.gz", b"x")

    with caplog.at_level(logging.WARNING):
        charges = CostExportSource(blob_store, "billingAccounts/1234").month_charges({PTU.lower()})

    month = charges[date(2026, 3, 1)]
    assert month.run.run_id == "run-new"
    assert sorted(month.rows["billed_cost"].to_pylist()) == [Decimal("0.000012"), Decimal("12.5")]
    assert set(month.rows["resource_id"].to_pylist()) == {PTU, PTU.upper()}
    assert month.days() == [date(2026, 3, 3), date(2026, 3, 4)]
    assert set(month.rows["meter_name"].to_pylist()) == {"gpt 4.1 Inpt glbl 1M Tokens"}
    assert set(month.rows["invoice_id"].to_pylist()) == {"G123456789"}
    assert "run-writing has data but no manifest.json" in caplog.text


def test_a_run_with_a_missing_or_short_part_is_ignored_with_a_log_line(tmp_path, caplog):
    store = LocalObjectStore(tmp_path)
    columns = export_columns("1.2-preview")
    write_export_run(store, _spec("run-good", 1), [_row("1.2-preview", PTU, 3, "10.00")], columns)
    missing = write_export_run(
        store, _spec("run-missing", 2, rows_per_part=1), [_row("1.2-preview", PTU, 3, "11")] * 2, columns
    )
    store.delete(missing[1])
    truncated = write_export_run(store, _spec("run-short", 3), [_row("1.2-preview", PTU, 3, "12")], columns)
    store.write_bytes(truncated[0], store.read_bytes(truncated[0])[:-5])

    with caplog.at_level(logging.WARNING):
        month = CostExportSource(store, "billingAccounts").month_charges({PTU})[date(2026, 3, 1)]

    assert month.run.run_id == "run-good"
    assert month.rows["billed_cost"].to_pylist() == [Decimal("10")]
    assert "run run-short (2026-03-01..2026-03-31) is incomplete" in caplog.text
    assert "its manifest says" in caplog.text
    assert "run run-missing (2026-03-01..2026-03-31) is incomplete" in caplog.text
    assert "listed in its manifest is missing" in caplog.text


def test_an_unknown_schema_version_is_refused_with_one_clear_message(tmp_path):
    store = LocalObjectStore(tmp_path)
    write_export_run(store, _spec("run-x", 1, schema_version="9.9"), [], export_columns("1.2-preview"))
    with pytest.raises(
        UnknownSchemaVersionError,
        match=r"FocusCost schema version '9\.9' is not supported \(supported: 1\.0, 1\.0r2, 1\.2-preview\)",
    ):
        CostExportSource(store).month_charges({PTU})


def test_a_part_lacking_a_column_of_its_declared_version_is_refused(tmp_path):
    store = LocalObjectStore(tmp_path)
    # Written with 1.0 names, declared 1.2-preview: InvoiceId and SkuMeter are missing.
    write_export_run(store, _spec("run-x", 1), [_row("1.0", PTU, 3, "1")], export_columns("1.0"))
    with pytest.raises(CostExportError, match=re.escape("lacks FocusCost 1.2-preview column")):
        CostExportSource(store).month_charges({PTU})


@pytest.mark.parametrize("cell", ["", "N/A", "NaN", "NULL", "#N/A", "Infinity"])
def test_a_cost_cell_that_is_empty_or_not_a_number_is_refused_never_read_as_zero(tmp_path, cell):
    # Arrow's CSV reader would read NaN, N/A, NULL or #N/A as null, and a null cost would be summed as 0 by
    # the allocation and by the check alike: the charge lost, the check still passing.
    store = LocalObjectStore(tmp_path)
    rows = [_row("1.0r2", PTU, 3, "10.00"), _row("1.0r2", PTU, 4, "1", effective_cost=cell)]
    write_export_run(store, _spec("run-1", 1, schema_version="1.0r2", file_format="csv"), rows, export_columns("1.0r2"))
    expected = "EffectiveCost is empty on a row of" if cell == "" else f"EffectiveCost '{cell}' is not a number"
    with pytest.raises(CostExportError, match=re.escape(expected)) as refused:
        CostExportSource(store).month_charges({PTU})
    assert "part_0_0001.csv" in str(refused.value)
    # Another resource's row may be anything: it is never read.
    other = [_row("1.0r2", PTU, 3, "10.00"), _row("1.0r2", OTHER, 4, "1", effective_cost=cell)]
    write_export_run(
        store, _spec("run-2", 2, schema_version="1.0r2", file_format="csv"), other, export_columns("1.0r2")
    )
    assert CostExportSource(store).month_charges({PTU})[date(2026, 3, 1)].run.run_id == "run-2"


def test_a_quantity_beyond_the_default_decimal_context_reads_exactly(tmp_path):
    # 12,000,000,000 tokens at the column's 18 places is 29 digits: more than Python's default 28.
    store = LocalObjectStore(tmp_path)
    rows = [_row("1.2-preview", PTU, 3, "10.00", consumed_quantity="12000000000.5")]
    write_export_run(store, _spec("run-1", 1), rows, export_columns("1.2-preview"))
    month = CostExportSource(store).month_charges({PTU})[date(2026, 3, 1)]
    assert month.rows["consumed_quantity"].to_pylist() == [Decimal("12000000000.5")]


def test_an_old_run_of_an_unsupported_version_stops_only_its_own_month(tmp_path):
    store = LocalObjectStore(tmp_path)
    old = _spec(
        "run-old", 1, schema_version="1.0-preview(v1)", period_start=date(2024, 1, 1), period_end=date(2024, 1, 31)
    )
    write_export_run(store, old, [], export_columns("1.2-preview"))
    write_export_run(store, _spec("run-1", 1), [_row("1.2-preview", PTU, 3, "10.00")], export_columns("1.2-preview"))
    source = CostExportSource(store)
    assert source.month_charges({PTU}, {date(2026, 3, 1)})[date(2026, 3, 1)].run.run_id == "run-1"
    with pytest.raises(UnknownSchemaVersionError, match=re.escape("'1.0-preview(v1)' is not supported")):
        source.month_charges({PTU}, {date(2024, 1, 1)})


def test_a_sibling_folder_of_the_root_is_not_read(blob_store):
    # On Blob a listing is by name prefix: the root `billingAccounts/1234` must not read `billingAccounts/12345`.
    columns = export_columns("1.2-preview")
    write_export_run(blob_store, _spec("run-ours", 1), [_row("1.2-preview", PTU, 3, "10.00")], columns)
    sibling = _spec("run-sibling", 2, root="billingAccounts/12345")
    write_export_run(blob_store, sibling, [_row("1.2-preview", PTU, 3, "99.00")], columns)
    month = CostExportSource(blob_store, "billingAccounts/1234").month_charges({PTU})[date(2026, 3, 1)]
    assert month.run.run_id == "run-ours" and month.rows["billed_cost"].to_pylist() == [Decimal("10")]
