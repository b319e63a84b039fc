"""Writing a Cost Management FocusCost export run in Microsoft's layout: the part files, then the
run's `manifest.json` listing each with its byte and row count (the manifest last, as Cost Management
does). Used by the simulator's export and by the tests to build real, incomplete and restated runs.

Layout and manifest: see `sources.cost_export.manifest` (Microsoft Learn, "Tutorial: Create and manage
Cost Management exports"). Column names per schema version: `sources.cost_export.columns`.
"""

import gzip
import io
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

import pyarrow as pa
import pyarrow.parquet as pq

from chargeback_pipeline.sources.cost_export.columns import EXPORT_COLUMNS
from chargeback_pipeline.storage.object_store import ObjectStore

# The export's own columns beyond those the pipeline reads, so a written part looks like Microsoft's.
EXTRA_COLUMNS = (
    "ProviderName",
    "PublisherName",
    "ServiceCategory",
    "ServiceSubcategory",
    "ServiceName",
    "BillingAccountName",
    "ResourceName",
    "ResourceType",
    "RegionId",
    "ChargeClass",
    "ChargeFrequency",
    "BillingPeriodEnd",
    "ListCost",
    "ContractedCost",
    "CommitmentDiscountCategory",
    "CommitmentDiscountName",
    "x_SkuMeterCategory",
    "x_ResourceGroupName",
)
_DECIMALS = {"BilledCost", "EffectiveCost", "ListCost", "ContractedCost", "ConsumedQuantity", "PricingQuantity"}
_TIMESTAMPS = {"BillingPeriodStart", "BillingPeriodEnd", "ChargePeriodStart", "ChargePeriodEnd"}
_SUBSCRIPTION = "/subscriptions/00000000-0000-0000-0000-000000000000"


@dataclass(frozen=True)
class RunSpec:
    """Where and what one export run is."""

    root: str  # the export's directory in the container
    export_name: str
    period_start: date
    period_end: date  # last day of the run's date range
    run_id: str
    submitted: datetime
    schema_version: str = "1.2-preview"
    file_format: str = "csv.gz"  # csv | csv.gz | parquet
    rows_per_part: int = 1000

    @property
    def folder(self) -> str:
        run = f"{self.export_name}/{self.period_start:%Y%m%d}-{self.period_end:%Y%m%d}/{self.run_id}"
        return f"{self.root.strip('/')}/{run}" if self.root.strip("/") else run

    @property
    def manifest_key(self) -> str:
        return f"{self.folder}/manifest.json"


def _csv_cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%dT%H:%M:%SZ")
    text = str(value)
    return f'"{text.replace(chr(34), chr(34) * 2)}"' if any(c in text for c in ',"\n\r') else text


def _part_bytes(rows: Sequence[dict], columns: list[str], file_format: str) -> bytes:
    if file_format == "parquet":
        fields = [
            pa.field(
                c,
                pa.decimal128(38, 18)
                if c in _DECIMALS
                else pa.timestamp("us", tz="UTC")
                if c in _TIMESTAMPS
                else pa.string(),
            )
            for c in columns
        ]
        values = [
            {c: (Decimal(row[c]) if c in _DECIMALS and row.get(c) is not None else row.get(c)) for c in columns}
            for row in rows
        ]
        sink = io.BytesIO()
        pq.write_table(pa.Table.from_pylist(values, schema=pa.schema(fields)), sink, compression="snappy")
        return sink.getvalue()
    lines = [",".join(columns), *(",".join(_csv_cell(row.get(c)) for c in columns) for row in rows)]
    text = ("\r\n".join(lines) + "\r\n").encode("utf-8")
    return gzip.compress(text, mtime=0) if file_format == "csv.gz" else text


def write_export_run(store: ObjectStore, spec: RunSpec, rows: Sequence[dict], columns: Sequence[str]) -> list[str]:
    """Write `rows` (dicts keyed by the export's column names) as the run's parts and manifest; the
    blob names written, manifest last. At least one part, even for no rows (with its header)."""
    columns = list(dict.fromkeys([*columns, *EXTRA_COLUMNS]))
    chunks = [rows[i : i + spec.rows_per_part] for i in range(0, len(rows), spec.rows_per_part)] or [[]]
    blobs = []
    for number, chunk in enumerate(chunks, start=1):
        name = f"{spec.folder}/part_0_{number:04d}.{spec.file_format}"
        data = _part_bytes(chunk, columns, spec.file_format)
        store.write_bytes(name, data)
        blobs.append({"blobName": name, "byteCount": len(data), "dataRowCount": len(chunk)})
    manifest = {
        "manifestVersion": "2024-04-01",
        "byteCount": sum(blob["byteCount"] for blob in blobs),
        "blobCount": len(blobs),
        "dataRowCount": len(rows),
        "exportConfig": {
            "exportName": spec.export_name,
            "resourceId": f"{_SUBSCRIPTION}/providers/Microsoft.CostManagement/exports/{spec.export_name}",
            "dataVersion": spec.schema_version,
            "apiVersion": "2025-03-01",
            "type": "FocusCost",
            "timeFrame": "MonthToDate",
            "granularity": "Daily",
        },
        "deliveryConfig": {
            "partitionData": True,
            "dataOverwriteBehavior": "CreateNewReport",
            "fileFormat": "Parquet" if spec.file_format == "parquet" else "Csv",
            "compressionMode": {"parquet": "snappy", "csv.gz": "gzip"}.get(spec.file_format, "none"),
            "containerUri": f"{_SUBSCRIPTION}/resourceGroups/rg-finops/providers/Microsoft.Storage/storageAccounts/hub",
            "rootFolderPath": spec.root,
        },
        "runInfo": {
            "executionType": "Scheduled",
            "submittedTime": spec.submitted.strftime("%Y-%m-%dT%H:%M:%S.%f") + "0Z",
            "runId": spec.run_id,
            "startDate": f"{spec.period_start:%Y-%m-%d}T00:00:00",
            "endDate": f"{spec.period_end:%Y-%m-%d}T00:00:00",
        },
        "blobs": blobs,
    }
    store.write_bytes(spec.manifest_key, json.dumps(manifest, indent=2).encode("utf-8"))
    return [blob["blobName"] for blob in blobs] + [spec.manifest_key]


def export_row(schema_version: str, values: dict, extra: dict | None = None) -> dict:
    """A row in the export's column names of `schema_version`, from values in the pipeline's names
    (`sources.cost_export.columns`); `extra` adds export columns by their own names."""
    names = EXPORT_COLUMNS[schema_version]
    row = {theirs: values.get(ours) for ours, theirs in names.items()}
    return {**row, **(extra or {})}


def export_columns(schema_version: str) -> list[str]:
    return list(EXPORT_COLUMNS[schema_version].values())
