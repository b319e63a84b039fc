"""Shared fixtures: a real Azurite Blob service, and pipeline resources pointed at local stand-ins."""

import json
import os
import shutil
import socket
import subprocess
import time
import urllib.request
from datetime import date
from pathlib import Path

import dagster as dg
import pytest

from chargeback_pipeline.defs.assets import build_assets
from chargeback_pipeline.defs.partitions import Calendar
from chargeback_pipeline.defs.resources import (
    DataQualityPolicy,
    FinOpsPolicyResource,
    FocusExportResource,
    ObjectStoreResource,
    PricingResource,
    SqlEngineResource,
)
from chargeback_pipeline.sources.resource import LogSourceResource

REPO = Path(__file__).resolve().parent.parent
# The tests' partitions start where the settings' default does (CHARGEBACK_PARTITIONS_START).
CALENDAR = Calendar.starting(date(2026, 1, 1))
ASSETS = build_assets(CALENDAR)
AZURITE_ACCOUNT_KEY = (
    # Azurite's published development key (not a secret): https://learn.microsoft.com/azure/storage/common/storage-use-azurite
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _azurite_command() -> str:
    for candidate in (
        os.environ.get("AZURITE_BLOB"),
        str(REPO / ".tools" / "node_modules" / ".bin" / "azurite-blob"),
        shutil.which("azurite-blob"),
    ):
        if candidate and Path(candidate).is_file():
            return candidate
    pytest.fail("azurite-blob not found: run the README's test command (it installs Azurite from npm)")


@pytest.fixture(scope="session")
def azurite_connection_string(tmp_path_factory) -> str:
    port = _free_port()
    location = tmp_path_factory.mktemp("azurite")
    process = subprocess.Popen(
        [
            _azurite_command(),
            "--blobHost", "127.0.0.1", "--blobPort", str(port), "--location", str(location),
            "--silent", "--skipApiVersionCheck", "--disableTelemetry",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                pytest.fail(f"Azurite did not start on port {port}")
            time.sleep(0.1)
    yield (
        "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;"
        f"AccountKey={AZURITE_ACCOUNT_KEY};BlobEndpoint=http://127.0.0.1:{port}/devstoreaccount1;"
    )
    process.terminate()
    process.wait(timeout=10)


@pytest.fixture
def instance():
    with dg.instance_for_test() as test_instance:
        yield test_instance


def local_resources(tmp_path: Path, source: LogSourceResource, policy: DataQualityPolicy | None = None) -> dict:
    return {
        "source": source,
        "lake": ObjectStoreResource(local_dir=str(tmp_path / "lake")),
        "reports": ObjectStoreResource(local_dir=str(tmp_path / "reports")),
        "policy": policy or DataQualityPolicy(),
        "sql_engine": SqlEngineResource(),
        "pricing": PricingResource(path=str(REPO / "pricing.example.yaml")),
        "focus": FocusExportResource(),  # FOCUS 1.3, no FinOps hubs copy
        "finops": FinOpsPolicyResource(),  # no budgets, default anomaly thresholds
    }


def pipeline(resources: dict) -> dg.Definitions:
    """The pipeline's assets on the tests' calendar, with these resources (what `cli.backfill` runs)."""
    # The FOCUS export's defaults (1.3, no hubs copy) unless the test sets its own.
    # Budgets and anomalies: no budgets file, default thresholds, unless the test sets its own.
    defaults = {"focus": FocusExportResource(), "finops": FinOpsPolicyResource()}
    return dg.Definitions(assets=ASSETS, resources={**defaults, **resources})


def graphql(url: str, query: str, variables: dict | None = None) -> dict:
    """The data of a GraphQL query to a running dagster-webserver at `url`; fails on a GraphQL error."""
    request = urllib.request.Request(
        f"{url}/graphql",
        data=json.dumps({"query": query, "variables": variables or {}}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        body = json.load(response)
    assert "errors" not in body, body["errors"]
    return body["data"]


# The multi-day end-to-end files: `make test` leaves them out (it must stay well under 15 minutes on 2
# cores) and `make test-e2e` runs only them; CI (`.ci/run`) runs both, one after the other.
END_TO_END_FILES = {
    "test_benchmark.py",
    "test_finops_hubs.py",
    "test_finops_pipeline.py",
    "test_late_data.py",
    "test_publication_decision.py",
    "test_ranged_runs.py",
    "test_schedules.py",
    "test_secrets.py",
    "test_simulated_week.py",
    "test_statement_html.py",
    "test_ui.py",
}


def pytest_collection_modifyitems(items):
    for item in items:
        if item.path.name in END_TO_END_FILES:
            item.add_marker(pytest.mark.slow)
