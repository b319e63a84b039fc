"""deploy/Dockerfile built and run as production runs it, all on loopback (`make image-test`, as root):

- the image built from the checkout on a base image given as BASE_IMAGE: here Debian's own packages
  (deploy/ci/base_image.sh), as the public python:3.11-slim may not be reachable; the locked wheels from a
  folder (.wheelhouse), as the build may have no package index;
- a backfill inside the container, as its non-root user, publishing to Blob (Azurite): the reports are
  byte-identical to the checkout's own `chargeback backfill`;
- the code server started by the image's own command (with `--init`), a webserver outside loading it over
  gRPC, and a run launched through the webserver, executed by the code server in the container, leaving
  no zombie behind.

Per-step times are printed (`-s`): the checkout's reference backfill runs while the image builds.
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
import urllib.request
from pathlib import Path

import pytest
import yaml
from azure.storage.blob import ContainerClient

from chargeback_pipeline_tests.conftest import _free_port, graphql
from deploy.tests.docker_daemon import docker_daemon
from deploy.tests.installed import CHECKOUT_BIN, REPO, clean_environment, published_files
from deploy.tests.postgres_server import postgres_server
from deploy.tests.test_production_instance import production_instance_yaml

pytestmark = pytest.mark.slow
TAG = "chargeback-pipeline:image-test"
DAY = "2026-11-20"
HOUR = f"{DAY}-05:00"
BACKFILL = (f"{DAY}-06:00", f"{DAY}-07:00")  # `dagster job backfill --from --to`: one run per hour
SMALL_DAY = {
    "CHARGEBACK_SIMULATED_REQUESTS_PER_HOUR": "50",
    "CHARGEBACK_GATEWAY_COMPLETENESS_MIN_REQUESTS": "100",
    "CHARGEBACK_RECONCILIATION_MIN_TOKENS": str(10**9),
}
WHEELHOUSE = REPO / ".wheelhouse"
CONTAINER_USER = 10001  # deploy/Dockerfile's USER


def _timed(what: str, command: list[str], **kwargs) -> subprocess.CompletedProcess:
    started = time.monotonic()
    done = subprocess.run(command, capture_output=True, text=True, **kwargs)
    print(f"{what}: {time.monotonic() - started:.0f} s", file=sys.stderr)
    assert done.returncode == 0, f"{what} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


@pytest.fixture(scope="module")
def docker(tmp_path_factory):
    with docker_daemon(tmp_path_factory.mktemp("docker")) as client:
        yield client


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The checkout's own `chargeback backfill` of the day, started before the image is built (it needs no
    image): its folder, once done."""
    folder = tmp_path_factory.mktemp("checkout")
    process = subprocess.Popen(
        [str(CHECKOUT_BIN / "chargeback"), "backfill", DAY],
        cwd=folder, env=clean_environment(DAGSTER_HOME=folder / "dagster_home", **SMALL_DAY),
        stdout=subprocess.DEVNULL, stderr=(folder / "backfill.log").open("w"),
    )  # fmt: skip
    try:
        yield process, folder
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


@pytest.fixture(scope="module")
def image(docker, reference) -> str:
    base = _timed("base image", ["bash", str(REPO / "deploy" / "ci" / "base_image.sh"), *docker]).stdout.strip()
    # The locked wheels (hashes checked) and the build backend, for a build without a package index.
    pip = [sys.executable, "-m", "pip", "download", "--quiet", "--dest", str(WHEELHOUSE)]
    _timed("wheelhouse", [*pip, "--require-hashes", "-r", str(REPO / "requirements.lock")])
    backend = tomllib.loads((REPO / "pyproject.toml").read_text())["build-system"]["requires"]
    _timed("build backend", [*pip, "--no-deps", *backend])
    _timed(
        "docker build",
        [
            *docker, "build", "--network", "host", "--quiet", "--file", str(REPO / "deploy" / "Dockerfile"),
            "--build-arg", f"BASE_IMAGE={base}", "--build-arg", "PIP_NO_INDEX=1",
            "--build-arg", "PIP_FIND_LINKS=/src/dependencies", "--tag", TAG, str(REPO),
        ],
        timeout=1800,
    )  # fmt: skip
    return TAG


def _settings(connection_string: str, container: str) -> dict[str, str]:
    return {
        "CHARGEBACK_BLOB_CONNECTION_STRING": connection_string,
        "CHARGEBACK_BLOB_CONTAINER": container,
        "CHARGEBACK_LAKE_ON_BLOB": "true",
        **SMALL_DAY,
    }


def _env_arguments(settings: dict[str, str]) -> list[str]:
    return [argument for name, value in settings.items() for argument in ("--env", f"{name}={value}")]


def test_a_backfill_in_the_container_runs_as_the_non_root_user_and_publishes_what_the_checkout_does(
    docker, image, reference, azurite_connection_string
):
    settings = _settings(azurite_connection_string, "image-backfill")
    run = [*docker, "run", "--rm", "--init", "--network", "host", *_env_arguments(settings), image]
    assert _timed("id in the container", [*run, "id", "-u"]).stdout.strip() == "10001"
    _timed("backfill in the container", [*run, "chargeback", "backfill", DAY], timeout=900)

    checkout, folder = reference
    started = time.monotonic()
    assert checkout.wait(timeout=900) == 0, (folder / "backfill.log").read_text()[-3000:]
    print(f"the checkout's backfill, waited for: {time.monotonic() - started:.0f} s", file=sys.stderr)
    container = ContainerClient.from_connection_string(azurite_connection_string, "image-backfill")
    on_blob = {
        blob.name: container.download_blob(blob.name).readall()
        for blob in container.list_blobs()
        if not blob.name.startswith("lake/")
    }
    in_folder = published_files(folder / "data" / "reports")
    assert in_folder, "the checkout's backfill published nothing"
    assert on_blob == in_folder


def _wait_for_port(port: int, process: subprocess.Popen | None, what: str, seconds: float = 180) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/server_info", timeout=2).close()
            return
        except OSError:
            if (process and process.poll() is not None) or time.monotonic() > deadline:
                raise AssertionError(f"{what} did not answer on port {port}") from None
            time.sleep(1)


# The container's processes (from /proc: the image has no `ps`): PID 1's name and the zombies' names.
PROCESSES = """
import glob, json
states = {}
for stat in glob.glob("/proc/[0-9]*/stat"):
    try:
        text = open(stat).read()
    except OSError:  # it ended meanwhile
        continue
    name, rest = text[text.index("(") + 1 : text.rindex(")")], text[text.rindex(")") + 1 :].split()
    states[stat.split("/")[2]] = (name, rest[0])
print(json.dumps({"1": states["1"][0], "zombies": [n for n, state in states.values() if state == "Z"]}))
"""


def _tag(run: dict, key: str) -> str | None:
    return next((tag["value"] for tag in run["tags"] if tag["key"] == key), None)


LAUNCH = """
mutation($params: ExecutionParams!) {
  launchRun(executionParams: $params) {
    __typename
    ... on LaunchRunSuccess { run { runId } }
    ... on PythonError { message }
    ... on RunConfigValidationInvalid { errors { message } }
  }
}"""
RUNS = "{ runsOrError { ... on Runs { results { status tags { key value } } } } }"


def test_the_readme_walk_the_image_code_server_on_the_production_instance_runs_what_is_launched(
    docker, image, azurite_connection_string
):
    """README "Deployment", from `docker run` on: the image's code server (`--init`); deploy/dagster.yaml
    on a real PostgreSQL (the local run launcher: the code server in the container starts each run there);
    `dagster-webserver` and `dagster-daemon` outside, on a workspace naming the code server; a run launched
    through the webserver and `dagster job backfill` of two hours, queued, dequeued by the daemon, run."""
    grpc_port, web_port = _free_port(), _free_port()
    tmp_path = Path(tempfile.mkdtemp(prefix="chargeback-image-test-"))
    home = tmp_path / "dagster_home"
    home.mkdir()
    # Everything outside runs as the container's user: files either creates under DAGSTER_HOME (the
    # instance's local artifact folder), the other can write.
    for path in (tmp_path, home):
        os.chown(path, CONTAINER_USER, CONTAINER_USER)
    workspace = tmp_path / "workspace.yaml"
    workspace.write_text(
        yaml.safe_dump(
            {"load_from": [{"grpc_server": {"host": "127.0.0.1", "port": grpc_port, "location_name": "image"}}]}
        )
    )
    as_container_user = ["setpriv", f"--reuid={CONTAINER_USER}", f"--regid={CONTAINER_USER}", "--clear-groups"]
    name = f"chargeback-code-server-{grpc_port}"
    processes: list[subprocess.Popen] = []
    with postgres_server() as postgres:
        (home / "dagster.yaml").write_text(yaml.safe_dump(production_instance_yaml(postgres)))
        instance_settings = {
            "DAGSTER_HOME": str(home),
            "DAGSTER_PG_HOST": postgres.host,
            "DAGSTER_PG_DB": postgres.db_name,
            "DAGSTER_PG_USERNAME": postgres.username,
            "DAGSTER_PG_PASSWORD": postgres.password,
        }
        settings = _settings(azurite_connection_string, "image-runs") | instance_settings
        _timed(
            "code server start",
            [*docker, "run", "--detach", "--init", "--name", name, "--network", "host", "--volume",
             f"{home}:{home}", *_env_arguments(settings | {"DAGSTER_GRPC_HOST": "127.0.0.1",
             "DAGSTER_GRPC_PORT": str(grpc_port)}), image],
        )  # fmt: skip
        outside = clean_environment(HOME=tmp_path, **instance_settings)

        def start(executable: str, *args: str) -> subprocess.Popen:
            process = subprocess.Popen(
                [*as_container_user, str(CHECKOUT_BIN / executable), *args, "-w", str(workspace)],
                cwd=tmp_path, env=outside, stdout=subprocess.DEVNULL,
                stderr=(tmp_path / f"{executable}.log").open("w"),
            )  # fmt: skip
            processes.append(process)
            return process

        def dagster(*args: str) -> None:
            command = [*as_container_user, str(CHECKOUT_BIN / "dagster"), *args, "-w", str(workspace)]
            _timed(f"dagster {' '.join(args[:2])}", command, cwd=tmp_path, env=outside, timeout=600)

        try:
            health = [*docker, "exec", name, "dagster", "api", "grpc-health-check", "-p", str(grpc_port)]
            deadline = time.monotonic() + 180
            started = time.monotonic()
            while subprocess.run(health, capture_output=True).returncode != 0:
                assert time.monotonic() < deadline, subprocess.run([*docker, "logs", name], capture_output=True).stderr
                time.sleep(2)
            print(f"code server healthy: {time.monotonic() - started:.0f} s", file=sys.stderr)
            # The hourly schedule would catch up on today's hours; this test runs what it launches.
            dagster("schedule", "stop", "hourly_attribution")
            webserver = start("dagster-webserver", "-h", "127.0.0.1", "-p", str(web_port))
            daemon = start("dagster-daemon", "run")
            _wait_for_port(web_port, webserver, "dagster-webserver")
            url = f"http://127.0.0.1:{web_port}"
            params = {
                "selector": {
                    "repositoryLocationName": "image",
                    "repositoryName": "__repository__",
                    "jobName": "1_hourly_attribution_job",
                },
                "executionMetadata": {"tags": [{"key": "dagster/partition", "value": HOUR}]},
            }
            launched = graphql(url, LAUNCH, {"params": params})["launchRun"]
            assert launched["__typename"] == "LaunchRunSuccess", json.dumps(launched)
            dagster("job", "backfill", "-j", "1_hourly_attribution_job", "--noprompt", "--from", BACKFILL[0],
                    "--to", BACKFILL[1])  # fmt: skip

            started, statuses = time.monotonic(), {}
            while set(statuses.values()) - {"SUCCESS"} or len(statuses) < 3:
                assert daemon.poll() is None, (tmp_path / "dagster-daemon.log").read_text()[-3000:]
                assert not set(statuses.values()) & {"FAILURE", "CANCELED"}, (
                    statuses, subprocess.run([*docker, "logs", name], capture_output=True, text=True).stderr[-3000:]
                )  # fmt: skip
                assert time.monotonic() - started < 600, f"runs not done: {statuses}"
                time.sleep(2)
                runs = graphql(url, RUNS)["runsOrError"]["results"]
                statuses = {_tag(run, "dagster/partition"): run["status"] for run in runs}
            print(
                f"3 runs queued, dequeued and run in the container: {time.monotonic() - started:.0f} s", file=sys.stderr
            )
            assert sorted(statuses) == [HOUR, *BACKFILL]
            # PID 1 is Docker's init (`--init`: without it, PID 1 is the code server, which would never reap
            # an orphan), and the runs' processes are gone, none left as a zombie.
            in_container = [*docker, "exec", name, "python3", "-c", PROCESSES]
            deadline = time.monotonic() + 60
            while (found := json.loads(_timed("processes in the container", in_container).stdout))["zombies"]:
                assert time.monotonic() < deadline, f"zombies in the code server's container: {found}"
                time.sleep(2)
            assert found["1"] == "docker-init", found
        finally:
            for process in reversed(processes):
                process.terminate()
                process.wait(timeout=60)
            subprocess.run([*docker, "rm", "--force", name], capture_output=True)

    shutil.rmtree(tmp_path, ignore_errors=True)
    landed = [
        blob.name
        for blob in ContainerClient.from_connection_string(azurite_connection_string, "image-runs").list_blobs()
    ]
    for hour in (HOUR, *BACKFILL):  # the lake's key of an hour: hour=2026-11-20T05
        folder = f"/hour={hour[:10]}T{hour[11:13]}/"
        assert any(name.startswith("lake/") and folder in name for name in landed), (hour, landed)
