"""A Cost Management export run's `manifest.json`: which blobs make the run, and what they hold.

Shape: Microsoft Learn, "Tutorial: Create and manage Cost Management exports" (the improved exports,
manifest section), and the FinOps toolkit's description of it (microsoft/finops-toolkit at 04d370f,
`docs-mslearn/toolkit/hubs/data-processing.md`, "About exports"):

    {"manifestVersion": "2024-04-01", "byteCount": 160769, "blobCount": 1, "dataRowCount": 136,
     "exportConfig": {"exportName": ..., "resourceId": ..., "dataVersion": "1.2-preview",
                      "apiVersion": ..., "type": "FocusCost", "timeFrame": "MonthToDate",
                      "granularity": "Daily"},
     "deliveryConfig": {"partitionData": true, "dataOverwriteBehavior": "CreateNewReport",
                        "fileFormat": "Csv" | "Parquet", "compressionMode": "gzip" | "snappy" | "none",
                        "containerUri": ..., "rootFolderPath": ...},
     "runInfo": {"executionType": "Scheduled", "submittedTime": "2024-02-03T18:33:03.1032074Z",
                 "runId": "af754a8e-...", "startDate": "2024-01-01T00:00:00",
                 "endDate": "2024-01-31T00:00:00"},
     "blobs": [{"blobName": "<root>/<export>/<YYYYMMDD-YYYYMMDD>/<run id>/part_0_0001.csv.gz",
                "byteCount": 160769, "dataRowCount": 136}]}

Cost Management writes the manifest after the data, so a run folder without one is still being written
(or failed): never read. `blobName` is relative to the container.
"""

import json
import re
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime

from chargeback_pipeline.sources.cost_export.columns import FOCUS_COST_DATASET, SUPPORTED_VERSIONS

MANIFEST_NAME = "manifest.json"
_FRACTION_DIGITS = re.compile(r"(\.\d{6})\d+")  # .NET writes 7 fraction digits; Python reads 6


class CostExportError(ValueError):
    """An export that cannot be used as it is; the message names the run and what to do."""


class UnknownSchemaVersionError(CostExportError):
    """The run's dataset version is not one this pipeline reads."""


@dataclass(frozen=True)
class ExportBlob:
    name: str  # relative to the container, as the manifest lists it
    byte_count: int | None
    row_count: int | None


@dataclass(frozen=True)
class ExportRun:
    """One run of one export, as its manifest describes it."""

    manifest_key: str
    export_name: str
    schema_version: str
    run_id: str
    submitted: datetime
    period_start: date  # the billing period (month) the run covers: runInfo.startDate
    period_end: date  # the last day it covers: runInfo.endDate
    file_format: str
    blobs: tuple[ExportBlob, ...]
    # Why the run cannot be read (another dataset, an unsupported version, no blob), raised when its month is
    # read: an old run of another month, superseded or never asked for, stops nothing.
    refusal: CostExportError | None = None

    @property
    def billing_month(self) -> date:
        return self.period_start.replace(day=1)

    def describe(self) -> str:
        return f"export {self.export_name!r} run {self.run_id} ({self.period_start}..{self.period_end})"


def _timestamp(text: str) -> datetime:
    moment = datetime.fromisoformat(_FRACTION_DIGITS.sub(r"\1", text.replace("Z", "+00:00")))
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def parse_manifest(key: str, data: bytes) -> ExportRun:
    """The run a manifest describes; CostExportError naming the manifest when it is not one. A run that is
    one but cannot be read carries why (`refusal`)."""
    try:
        document = json.loads(data)
        config, run_info = document["exportConfig"], document["runInfo"]
        dataset, version = str(config["type"]), str(config["dataVersion"])
        blobs = tuple(
            ExportBlob(
                name=str(blob["blobName"]),
                byte_count=None if blob.get("byteCount") is None else int(blob["byteCount"]),
                row_count=None if blob.get("dataRowCount") is None else int(blob["dataRowCount"]),
            )
            for blob in document["blobs"]
        )
        run = ExportRun(
            manifest_key=key,
            export_name=str(config.get("exportName", "")),
            schema_version=version,
            run_id=str(run_info["runId"]),
            submitted=_timestamp(str(run_info["submittedTime"])),
            period_start=_timestamp(str(run_info["startDate"])).date(),
            period_end=_timestamp(str(run_info["endDate"])).date(),
            file_format=str(document.get("deliveryConfig", {}).get("fileFormat", "")),
            blobs=blobs,
        )
    except (ValueError, KeyError, TypeError) as error:
        raise CostExportError(f"cost export manifest {key} is not a Cost Management manifest: {error!r}") from None
    return replace(run, refusal=_refusal(key, dataset, version, blobs))


def _refusal(key: str, dataset: str, version: str, blobs: tuple) -> CostExportError | None:
    if dataset.lower() != FOCUS_COST_DATASET.lower():
        return CostExportError(
            f"cost export manifest {key}: dataset {dataset!r} is not the FOCUS cost and usage dataset "
            f"({FOCUS_COST_DATASET}); point the cost export setting at a FocusCost export"
        )
    if version not in SUPPORTED_VERSIONS:
        return UnknownSchemaVersionError(
            f"cost export manifest {key}: FocusCost schema version {version!r} is not supported "
            f"(supported: {', '.join(SUPPORTED_VERSIONS)}); set the export's dataset version to one of them"
        )
    if not blobs:
        return CostExportError(f"cost export manifest {key} lists no blob")
    return None
