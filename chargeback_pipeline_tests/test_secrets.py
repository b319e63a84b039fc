"""Reports on a real Azurite through `chargeback backfill`, with the connection string's secret never
leaving the process: not in the CLI's output, the Dagster instance (every row of its SQLite databases and
every file of DAGSTER_HOME), what the GraphQL API serves, nor in error messages."""

import contextlib
import json
import sqlite3
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qs, unquote

import pytest
from azure.storage.blob import ContainerClient, ContainerSasPermissions, generate_container_sas

from chargeback_pipeline_tests.conftest import AZURITE_ACCOUNT_KEY, REPO
from chargeback_pipeline_tests.test_cli import DAY, chargeback, environment, last_line

ACCOUNT = "devstoreaccount1"
DAGSTER_GRAPHQL = str(Path(sys.executable).with_name("dagster-graphql"))
# What the Dagster UI shows of the runs: materializations with their metadata, run tags and config, and
# the resources' configured values.
GRAPHQL = """
{
  assetNodes {
    assetKey { path }
    assetMaterializations(limit: 100) {
      metadataEntries {
        label
        ... on TextMetadataEntry { text }
        ... on UrlMetadataEntry { url }
        ... on PathMetadataEntry { path }
        ... on JsonMetadataEntry { jsonString }
        ... on MarkdownMetadataEntry { mdStr }
      }
    }
  }
  runsOrError { ... on Runs { results { runId status tags { key value } runConfigYaml } } }
  workspaceOrError { ... on Workspace { locationEntries { locationOrLoadError { ... on RepositoryLocation {
    repositories { allTopLevelResourceDetails { name configuredValues { key value type } } }
  } } } } }
}
"""


def endpoint_of(connection_string: str) -> str:
    return dict(part.split("=", 1) for part in connection_string.strip(";").split(";"))["BlobEndpoint"]


def new_container(connection_string: str) -> str:
    name = f"secrets-{uuid.uuid4().hex[:8]}"
    ContainerClient.from_connection_string(connection_string, name).create_container()
    return name


def container_sas(container: str, account_key: str = AZURITE_ACCOUNT_KEY) -> str:
    """A real SAS token for the container (signed with `account_key`), as the portal gives it."""
    return generate_container_sas(
        ACCOUNT,
        container,
        account_key=account_key,
        permission=ContainerSasPermissions(read=True, write=True, delete=True, list=True, create=True, add=True),
        expiry=datetime.now(UTC) + timedelta(hours=2),
    )


def signature_forms(sas: str) -> set[str]:
    """The signature as it appears in a SAS token (URL-encoded) and decoded."""
    encoded = sas.split("sig=", 1)[1].split("&")[0]
    return {encoded, unquote(encoded), parse_qs(sas)["sig"][0]}


def stored_text(home: Path) -> str:
    """Everything DAGSTER_HOME holds: each file's bytes, and each SQLite database row by row (a long value
    spans overflow pages, so the raw bytes alone could hide it)."""
    parts = []
    for path in sorted(p for p in home.rglob("*") if p.is_file()):
        data = path.read_bytes()
        parts.append(data.decode("utf-8", "replace"))
        if data.startswith(b"SQLite format 3"):
            with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as database:
                tables = [name for (name,) in database.execute("SELECT name FROM sqlite_master WHERE type='table'")]
                for table in tables:
                    parts.extend(repr(row) for row in database.execute(f'SELECT * FROM "{table}"'))
    return "\n".join(parts)


def graphql_text(tmp_path: Path, **overrides) -> str:
    """The GraphQL API's answer over the instance, with the code location loaded as `dagster dev` does."""
    answer = tmp_path / "graphql.json"
    done = subprocess.run(
        [DAGSTER_GRAPHQL, "-w", "workspace.yaml", "-t", GRAPHQL, "-o", str(answer)],
        env=environment(tmp_path, **overrides),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    body = json.loads(answer.read_text())
    assert "errors" not in body and body["data"]["runsOrError"]["results"], body
    return answer.read_text() + done.stdout + done.stderr


def test_backfill_to_blob_prints_where_the_reports_are(tmp_path, azurite_connection_string):
    container = new_container(azurite_connection_string)
    blob = {"CHARGEBACK_BLOB_CONNECTION_STRING": azurite_connection_string, "CHARGEBACK_BLOB_CONTAINER": container}

    done = chargeback(tmp_path, "backfill", DAY, **blob)

    assert done.returncode == 0, done.stderr
    base = f"{endpoint_of(azurite_connection_string)}/{container}"
    lines = done.stdout.splitlines()
    assert lines[-11:] == [
        "published (CSV, with .parquet beside each):",
        f"  {DAY}",
        f"    usage:       {base}/daily/usage_date={DAY}/product_usage.csv",
        f"    chargeback:  {base}/daily/usage_date={DAY}/chargeback.csv",
        f"    FOCUS:       {base}/daily/usage_date={DAY}/focus.csv",
        f"    budgets:     {base}/daily/usage_date={DAY}/budget_status.csv",
        f"    anomalies:   {base}/daily/usage_date={DAY}/cost_anomalies.csv",
        f"  2026-11 statement:   {base}/monthly/month=2026-11/statement.csv",
        f"          to read:     {base}/monthly/month=2026-11/statement.html",
        f"          PTU sizing:  {base}/monthly/month=2026-11/ptu_rightsizing.csv",
        f"          PTU what-if: {base}/monthly/month=2026-11/ptu_rightsizing.png",
    ]
    names = {b.name for b in ContainerClient.from_connection_string(azurite_connection_string, container).list_blobs()}
    assert {f"daily/usage_date={DAY}/product_usage.csv", "monthly/month=2026-11/statement.csv"} <= names

    verified = chargeback(tmp_path, "verify-simulated", DAY, **blob)

    assert verified.returncode == 0, verified.stderr
    assert verified.stdout.startswith(f"{DAY}: published report matches the simulator's ground truth exactly (")
    assert f"{DAY}: the chargeback's cost per product matches the simulator's money oracle (" in verified.stdout
    assert AZURITE_ACCOUNT_KEY not in done.stdout + done.stderr + stored_text(tmp_path / "dagster_home")


def test_a_sas_signature_never_leaves_the_process(tmp_path, azurite_connection_string):
    container = new_container(azurite_connection_string)
    endpoint = endpoint_of(azurite_connection_string)
    sas = container_sas(container)
    # A SAS signed with another key: Azure refuses it, and its signature must not show in the refusal.
    refused_sas = container_sas(container, account_key="bm90LXRoZS1rZXktb2YtZGV2c3RvcmVhY2NvdW50MQ==")
    secrets = signature_forms(sas) | signature_forms(refused_sas)
    blob = {
        "CHARGEBACK_BLOB_CONNECTION_STRING": f"BlobEndpoint={endpoint};SharedAccessSignature={sas}",
        "CHARGEBACK_BLOB_CONTAINER": container,
        "CHARGEBACK_LAKE_ON_BLOB": "true",  # lake objects too: their URLs are in error messages
    }

    published = chargeback(tmp_path, "backfill", DAY, **blob)

    assert published.returncode == 0, published.stderr
    assert f"    usage:       {endpoint}/{container}/daily/usage_date={DAY}/product_usage.csv" in published.stdout

    refused = chargeback(
        tmp_path,
        "backfill",
        DAY,
        **blob | {"CHARGEBACK_BLOB_CONNECTION_STRING": f"BlobEndpoint={endpoint};SharedAccessSignature={refused_sas}"},
    )

    assert refused.returncode == 1
    assert last_line(refused.stderr).startswith(f"error: hours of {DAY}..{DAY} failed (run ")
    assert (
        f"raw_gateway_logs: chargeback_pipeline.storage.object_store.ObjectStoreError: could not create the "
        f"container {endpoint}/{container}: Server failed to authenticate the request. Make sure the value of the "
        "Authorization header is formed correctly including the signature. (AuthorizationFailure)"
    ) in last_line(refused.stderr)
    everything = "\n".join(
        [
            published.stdout,
            published.stderr,
            refused.stdout,
            refused.stderr,
            stored_text(tmp_path / "dagster_home"),
            graphql_text(tmp_path, **blob),
        ]
    )
    assert [secret for secret in secrets if secret in everything] == []
    assert "sig=" not in everything


@pytest.mark.parametrize(
    "text",
    [
        "https://a.blob.core.windows.net/c/k.csv?se=2026&sp=r&sv=2026-10-06&sr=c&sig=abc%2Bdef%3D",
        "BlobEndpoint=https://a.blob.core.windows.net;SharedAccessSignature=sv=2026&sig=abc%2Bdef%3D",
        "AccountName=a;AccountKey=abc+def==;EndpointSuffix=core.windows.net",
    ],
)
def test_redact_hides_signatures_and_keys(text):
    from chargeback_pipeline.storage.object_store import redact

    assert "abc" not in redact(text) and "***" in redact(text)
