"""The production instance, deploy/dagster.yaml, on a real PostgreSQL (`make instance-test`): its storage,
run queue (QueuedRunCoordinator and its limits) and pools as written; only the run launcher is swapped
for the local one (runs as processes, not Kubernetes pods) and the port set to the test server's.

As production runs it: a code server (`dagster api grpc`, as the image's command) that the daemon and every
`dagster` command load over gRPC from a workspace file. The daemon runs a one-day backfill of the hourly
job, one run per hour, several at once within the limits; then the rollup sensors roll the day and the
month up. What they publish is byte-identical to what `chargeback backfill` publishes for the same day.
One day, not more: every hourly run is a process of its own (two at once, about 9 s an hour on two cores),
and a second day would prove nothing the first does not.

The rollup sensors tick every 5 minutes; a sensor ticks at once when started. So they are stopped before
the daemon starts and each started when its inputs are in (the day after its hours, the month after the
day), as an operator can, rather than waiting for their next tick. `chargeback backfill`, the reference,
runs meanwhile in its own process and folders.
"""

import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import dagster as dg
import pytest
import yaml

from chargeback_pipeline.storage import keys
from chargeback_pipeline_tests.conftest import _free_port
from deploy.tests.installed import CHECKOUT_BIN, REPO, clean_environment, published_files
from deploy.tests.postgres_server import Postgres, postgres_server

pytestmark = pytest.mark.slow
DAY = "2026-11-20"
HOURS = 24
HOURLY_JOB, DAILY_JOB, MONTHLY_JOB = "1_hourly_attribution_job", "2_daily_rollup_job", "3_monthly_statement_job"
SMALL_DAYS = {
    "CHARGEBACK_SIMULATED_REQUESTS_PER_HOUR": "50",
    "CHARGEBACK_GATEWAY_COMPLETENESS_MIN_REQUESTS": "100",
    "CHARGEBACK_RECONCILIATION_MIN_TOKENS": str(10**9),
}
MODULE = "chargeback_pipeline.definitions"
DEADLINE_SECONDS = 1800


def production_instance_yaml(postgres: Postgres) -> dict:
    instance = yaml.safe_load((REPO / "deploy" / "dagster.yaml").read_text())
    instance["run_launcher"] = {"module": "dagster.core.launcher", "class": "DefaultRunLauncher"}
    instance["storage"]["postgres"]["postgres_db"]["port"] = postgres.port
    return instance


def _overlap(intervals: list[tuple[float, float]]) -> int:
    """The most intervals in progress at one instant."""
    events = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals])
    most = current = 0
    for _, change in events:
        current += change
        most = max(most, current)
    return most


class Clock:
    """Seconds since the test began, printed per step (CI's log shows where the time goes)."""

    def __init__(self) -> None:
        self.started = self.last = time.monotonic()

    def step(self, what: str) -> None:
        now = time.monotonic()
        print(f"instance: {what}: {now - self.last:.0f} s (at {now - self.started:.0f} s)", file=sys.stderr)
        self.last = now


def _wait_for(instance: dg.DagsterInstance, watched: list[subprocess.Popen], done: Callable[[dict], bool]) -> dict:
    """Polls the runs of the three jobs until `done(runs)`; fails at once on a failed run or a dead process."""
    deadline = time.monotonic() + DEADLINE_SECONDS
    while True:
        for process in watched:
            assert process.poll() is None, f"{process.args[:3]} exited with {process.returncode}"
        runs = {
            job: list(instance.get_run_records(dg.RunsFilter(job_name=job)))
            for job in (HOURLY_JOB, DAILY_JOB, MONTHLY_JOB)
        }
        failed = [r.dagster_run.run_id for rs in runs.values() for r in rs if r.dagster_run.is_failure]
        assert not failed, f"failed runs: {failed}"
        if done(runs) and not any(not r.dagster_run.is_finished for rs in runs.values() for r in rs):
            return runs
        assert time.monotonic() < deadline, f"not done in {DEADLINE_SECONDS} s"
        time.sleep(2)


def _successes(runs: list) -> int:
    return sum(r.dagster_run.is_success for r in runs)


def _succeeded_partitions(runs: list) -> set[str]:
    return {r.dagster_run.tags.get("dagster/partition") for r in runs if r.dagster_run.is_success}


def _killed_if_running(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.kill()
        process.wait(timeout=30)


def test_the_daemon_on_postgres_backfills_a_day_as_hourly_runs_and_publishes_what_the_cli_does(
    tmp_path, monkeypatch, request
):
    clock = Clock()
    # The reference, in its own process, folders and SQLite instance, while the daemon works.
    cli = tmp_path / "cli"
    cli.mkdir()
    reference = subprocess.Popen(
        [str(CHECKOUT_BIN / "chargeback"), "backfill", DAY, DAY],
        cwd=cli, env=clean_environment(DAGSTER_HOME=cli / "dagster_home", **SMALL_DAYS),
        stdout=subprocess.DEVNULL, stderr=(tmp_path / "cli.log").open("w"),
    )  # fmt: skip
    request.addfinalizer(lambda: _killed_if_running(reference))  # a failure before its wait leaves none behind
    processes: list[subprocess.Popen] = []
    with postgres_server() as postgres:
        try:
            clock.step("PostgreSQL started")
            home = tmp_path / "dagster_home"
            home.mkdir()
            (home / "dagster.yaml").write_text(yaml.safe_dump(production_instance_yaml(postgres)))
            env = clean_environment(
                DAGSTER_HOME=home,
                DAGSTER_PG_HOST=postgres.host,
                DAGSTER_PG_DB=postgres.db_name,
                DAGSTER_PG_USERNAME=postgres.username,
                DAGSTER_PG_PASSWORD=postgres.password,
                CHARGEBACK_LAKE_DIR=tmp_path / "lake",
                CHARGEBACK_OUTPUT_DIR=tmp_path / "reports",
                **SMALL_DAYS,
            )
            for name in ("DAGSTER_PG_HOST", "DAGSTER_PG_DB", "DAGSTER_PG_USERNAME", "DAGSTER_PG_PASSWORD"):
                monkeypatch.setenv(name, env[name])  # this process reads the runs from the instance too

            def start(command: list[str], log: str) -> subprocess.Popen:
                process = subprocess.Popen(
                    command, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=(tmp_path / log).open("w")
                )
                processes.append(process)
                return process

            grpc_port = _free_port()
            code_server = start(
                [str(CHECKOUT_BIN / "dagster"), "api", "grpc", "-m", MODULE, "-h", "127.0.0.1", "-p", str(grpc_port)],
                "code_server.log",
            )
            workspace = tmp_path / "workspace.yaml"
            workspace.write_text(
                yaml.safe_dump({"load_from": [{"grpc_server": {"host": "127.0.0.1", "port": grpc_port}}]})
            )
            health = [str(CHECKOUT_BIN / "dagster"), "api", "grpc-health-check", "-p", str(grpc_port)]
            deadline = time.monotonic() + 300
            while subprocess.run(health, env=env, capture_output=True).returncode != 0:
                assert code_server.poll() is None and time.monotonic() < deadline, (
                    tmp_path / "code_server.log"
                ).read_text()[-3000:]
                time.sleep(1)
            clock.step("code server up")

            def dagster(*args: str) -> subprocess.Popen:
                return subprocess.Popen(
                    [str(CHECKOUT_BIN / "dagster"), *args, "-w", str(workspace)],
                    cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                )  # fmt: skip

            def finished(*commands: subprocess.Popen) -> None:
                for command in commands:
                    output, _ = command.communicate(timeout=600)
                    assert command.returncode == 0, f"{' '.join(command.args[:4])}:\n{output[-3000:]}"

            # The hourly schedule would catch up on today's hours; this test is about a backfill of past days.
            finished(
                dagster("schedule", "stop", "hourly_attribution"),
                dagster("sensor", "stop", "daily_rollup"),
                dagster("sensor", "stop", "monthly_rollup"),
            )
            clock.step("schedule and rollup sensors stopped")
            daemon = start(
                [str(CHECKOUT_BIN / "dagster-daemon"), "run", "-w", str(workspace)],
                "daemon.log",
            )
            finished(
                dagster(
                    "job", "backfill", "-j", HOURLY_JOB, "--noprompt",
                    "--from", f"{DAY}-00:00", "--to", f"{DAY}-23:00",
                )
            )  # fmt: skip
            clock.step(f"backfill of {HOURS} hours submitted (the daemon already running them)")

            with dg.DagsterInstance.from_config(str(home)) as instance:
                runs = _wait_for(instance, [daemon, code_server], lambda runs: _successes(runs[HOURLY_JOB]) == HOURS)
                clock.step(f"{HOURS} hourly runs succeeded")
                hourly = runs[HOURLY_JOB]

                finished(dagster("sensor", "start", "daily_rollup"))
                runs = _wait_for(
                    instance,
                    [daemon, code_server],
                    lambda runs: DAY in _succeeded_partitions(runs[DAILY_JOB]),
                )
                clock.step("daily_rollup sensor started, the day rolled up")
                last_day_end = max(r.end_time for r in runs[DAILY_JOB])

                finished(dagster("sensor", "start", "monthly_rollup"))
                runs = _wait_for(
                    instance,
                    [daemon, code_server],
                    lambda runs: any(
                        r.dagster_run.is_success and r.start_time >= last_day_end for r in runs[MONTHLY_JOB]
                    ),
                )
                clock.step("monthly_rollup sensor started, the month stated")
                # The day rolled up once, from its 24 hours, and the month once, after the day.
                assert sorted(r.dagster_run.tags["dagster/partition"] for r in runs[DAILY_JOB]) == [DAY]
                assert [r.dagster_run.tags["dagster/partition"] for r in runs[MONTHLY_JOB]] == [DAY[:8] + "01"]
        finally:
            # Before PostgreSQL stops: the server's shutdown would otherwise wait on these clients.
            for process in reversed(processes):
                process.terminate()
                try:
                    process.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    process.kill()
            clock.step("daemon and code server stopped")
    clock.step("PostgreSQL stopped")

    # One run per hour of the day, each tagged as the backfill's; at most two at once (the queue's
    # `dagster/backfill` limit), and more than one: the queue ran them side by side.
    assert sorted(r.dagster_run.tags["dagster/partition"] for r in hourly) == sorted(
        f"{DAY}-{hour:02d}:00" for hour in range(HOURS)
    )
    assert all("dagster/backfill" in r.dagster_run.tags for r in hourly)
    at_once = _overlap([(r.start_time, r.end_time) for r in hourly])
    assert at_once == 2, f"{at_once} hourly runs at once"

    assert reference.wait(timeout=900) == 0, (tmp_path / "cli.log").read_text()[-3000:]
    clock.step("chargeback backfill (the reference) done")
    by_cli = published_files(cli / "data" / "reports")
    assert by_cli
    published = published_files(Path(tmp_path / "reports"))
    # The alert sensor's queue (`alerts/alert_queue.json`, README "Budgets and anomalies") is the daemon's
    # state beside the reports, not a publication, and the CLI runs no sensor: compared apart. Nothing to
    # alert on here (no budgets file, no history for anomalies).
    assert json.loads(published.pop(keys.ALERT_QUEUE)) == {"pending": [], "sent": []}
    assert published == by_cli
