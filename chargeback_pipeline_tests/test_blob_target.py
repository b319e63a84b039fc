"""Reports (and the lake) on Azure Blob Storage: a real Azurite, reached by the real SDK over HTTP."""

import csv
import io
import uuid
from datetime import date

from azure.storage.blob import ContainerClient

from chargeback_pipeline.cli.backfill import backfill
from chargeback_pipeline.defs.resources import (
    DataQualityPolicy,
    ObjectStoreResource,
    PricingResource,
    SqlEngineResource,
)
from chargeback_pipeline.sources.folder.resource import FolderSourceResource
from chargeback_pipeline_tests.conftest import REPO, pipeline
from chargeback_pipeline_tests.folder_data import DAY, EXPECTED_REPORT, write_export


def test_reports_and_lake_on_blob(tmp_path, azurite_connection_string, instance):
    container_name = f"chargeback-{uuid.uuid4().hex[:8]}"
    export = write_export(tmp_path / "export")
    blob = dict(blob_connection_string=azurite_connection_string, blob_container=container_name)
    resources = {
        "source": FolderSourceResource(source_folder=str(export)),
        "lake": ObjectStoreResource(**blob, blob_prefix="lake"),
        "reports": ObjectStoreResource(**blob),
        "policy": DataQualityPolicy(),
        "sql_engine": SqlEngineResource(),
        "pricing": PricingResource(path=str(REPO / "pricing.example.yaml")),
    }

    backfill(date.fromisoformat(DAY), date.fromisoformat(DAY), pipeline(resources), instance)

    container = ContainerClient.from_connection_string(azurite_connection_string, container_name)
    names = {b.name for b in container.list_blobs()}
    assert {f"daily/usage_date={DAY}/product_usage.csv", f"daily/usage_date={DAY}/product_usage.parquet"} <= names
    assert f"lake/raw/gateway_logs/hour={DAY}T08/rows.parquet" in names
    report = container.download_blob(f"daily/usage_date={DAY}/product_usage.csv").readall().decode("utf-8")
    rows = list(csv.DictReader(io.StringIO(report, newline="")))
    assert sorted((r["product_id"], int(r["prompt_tokens"]), int(r["calls"])) for r in rows) == sorted(
        (e[0], e[5], e[7]) for e in EXPECTED_REPORT
    )
    properties = container.get_blob_client(f"daily/usage_date={DAY}/product_usage.csv").get_blob_properties()
    assert properties.content_settings.content_type == "text/csv; charset=utf-8"
