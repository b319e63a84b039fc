"""The real Dagster webserver, started on loopback from the repository's workspace.yaml, serves what users
rely on: every asset with its group, partitioning and checks, and the schedules and sensors."""

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from chargeback_pipeline.definitions import build_definitions
from chargeback_pipeline.settings import load_settings
from chargeback_pipeline_tests.conftest import REPO, graphql

WEBSERVER = str(Path(sys.executable).parent / "dagster-webserver")
QUERY = """
{
  assetNodes {
    assetKey { path }
    groupName
    partitionDefinition { type description }
    assetChecksOrError { ... on AssetChecks { checks { name } } }
  }
  repositoriesOrError {
    __typename
    ... on RepositoryConnection { nodes { schedules { name cronSchedule } sensors { name } } }
  }
}
"""

defs = build_definitions(load_settings())


@pytest.fixture(scope="module")
def webserver(tmp_path_factory):
    home = tmp_path_factory.mktemp("dagster_home")
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    log = (home / "webserver.log").open("wb")
    process = subprocess.Popen(
        [WEBSERVER, "-h", "127.0.0.1", "-p", str(port), "-w", "workspace.yaml"],
        cwd=REPO,
        env={**os.environ, "DAGSTER_HOME": str(home)},
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group: the code server it starts is stopped with it
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:  # up, and the code location loaded
                if graphql(url, "{ repositoriesOrError { __typename } }")["repositoriesOrError"]["__typename"] == (
                    "RepositoryConnection"
                ):
                    break
            except OSError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"dagster-webserver did not come up: {(home / 'webserver.log').read_text()[-3000:]}")
            time.sleep(0.5)
        yield url
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        log.close()


def test_every_asset_is_served_with_its_group_partitions_and_checks(webserver):
    served = {tuple(node["assetKey"]["path"]): node for node in graphql(webserver, QUERY)["assetNodes"]}
    specs = {tuple(spec.key.path): spec for spec in defs.resolve_all_asset_specs()}
    check_keys = defs.resolve_asset_graph().asset_check_keys

    assert served.keys() == specs.keys()
    for path, spec in specs.items():
        node = served[path]
        assert node["groupName"] == spec.group_name, path
        assert node["partitionDefinition"]["description"] == str(spec.partitions_def), path
        assert {c["name"] for c in node["assetChecksOrError"]["checks"]} == {
            key.name for key in check_keys if key.asset_key == spec.key
        }, path
    hourly = [p for p, node in served.items() if node["partitionDefinition"]["description"].startswith("Hourly")]
    assert {("raw_gateway_logs",), ("raw_llm_logs",), ("attributed_requests",)} <= set(hourly)


def test_the_schedules_and_sensors_are_served(webserver):
    (repository,) = graphql(webserver, QUERY)["repositoriesOrError"]["nodes"]

    assert {s["name"]: s["cronSchedule"] for s in repository["schedules"]} == {
        s.name: s.cron_schedule for s in defs.schedules or []
    }
    assert {s["name"] for s in repository["sensors"]} == {s.name for s in defs.sensors or []}
