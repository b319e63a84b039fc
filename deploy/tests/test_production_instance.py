"""The production instance, deploy/dagster.yaml, on a real PostgreSQL (`make instance-test`): its storage,
run queue (QueuedRunCoordinator and its limits) and pools as written; only the run launcher is swapped
for the local one (runs as processes, not Kubernetes pods) and the port set to the test server's.

The daemon runs a two-day backfill of the hourly job, one run per hour, several at once within the limits,
then the rollup sensors roll the days and the month up; what they publish is byte-identical to what
`chargeback backfill` publishes for the same days.
"""

import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import pytest
import yaml

from deploy.tests.installed import CHECKOUT_BIN, REPO, clean_environment, published_files
from deploy.tests.postgres_server import Postgres, postgres_server

pytestmark = pytest.mark.slow
FIRST_DAY, LAST_DAY = "2026-11-20", "2026-11-21"
HOURLY_JOB, DAILY_JOB, MONTHLY_JOB = "1_hourly_attribution_job", "2_daily_rollup_job", "3_monthly_statement_job"
SMALL_DAYS = {
    "CHARGEBACK_SIMULATED_REQUESTS_PER_HOUR": "50",
    "CHARGEBACK_GATEWAY_COMPLETENESS_MIN_REQUESTS": "100",
    "CHARGEBACK_RECONCILIATION_MIN_TOKENS": str(10**9),
}
MODULE = ["-m", "chargeback_pipeline.definitions"]


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


def _runs(instance: dg.DagsterInstance, job: str) -> list:
    return list(instance.get_run_records(dg.RunsFilter(job_name=job)))


def test_the_daemon_on_postgres_backfills_two_days_as_hourly_runs_and_publishes_what_the_cli_does(
    tmp_path, monkeypatch
):
    with postgres_server() as postgres:
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

        def dagster(*args: str) -> None:
            done = subprocess.run(
                [str(CHECKOUT_BIN / "dagster"), *args],
                cwd=tmp_path,
                env=env,
                capture_output=True,
                text=True,
                timeout=600,
            )
            assert done.returncode == 0, f"dagster {' '.join(args)}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"

        # The hourly schedule would catch up on today's hours; this test is about a backfill of past days.
        dagster("schedule", "stop", "hourly_attribution", *MODULE)
        started = time.monotonic()
        dagster(
            "job", "backfill", "-j", HOURLY_JOB, *MODULE, "--noprompt",
            "--from", f"{FIRST_DAY}-00:00", "--to", f"{LAST_DAY}-23:00",
        )  # fmt: skip
        daemon = subprocess.Popen(
            [str(CHECKOUT_BIN / "dagster-daemon"), "run", *MODULE],
            cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=(tmp_path / "daemon.log").open("w"),
        )  # fmt: skip
        try:
            with dg.DagsterInstance.from_config(str(home)) as instance:
                deadline = time.monotonic() + 3600
                while True:
                    assert daemon.poll() is None, (tmp_path / "daemon.log").read_text()[-3000:]
                    assert time.monotonic() < deadline, "the backfill and rollups did not finish in an hour"
                    runs = {job: _runs(instance, job) for job in (HOURLY_JOB, DAILY_JOB, MONTHLY_JOB)}
                    failed = [r.dagster_run.run_id for rs in runs.values() for r in rs if r.dagster_run.is_failure]
                    assert not failed, f"failed runs: {failed}; see the runs in {home}"
                    done = {job: sum(r.dagster_run.is_success for r in rs) for job, rs in runs.items()}
                    in_flight = any(not r.dagster_run.is_finished for rs in runs.values() for r in rs)
                    # The month is stated again after each day rolled up (the month in progress): done once a
                    # monthly run started after the last daily run ended.
                    last_day_end = max((r.end_time or 0 for r in runs[DAILY_JOB]), default=0)
                    month_after = any(
                        r.dagster_run.is_success and (r.start_time or 0) >= last_day_end for r in runs[MONTHLY_JOB]
                    )
                    if done[HOURLY_JOB] == 48 and done[DAILY_JOB] >= 2 and month_after and not in_flight:
                        break
                    time.sleep(5)
                print(
                    f"instance: 48 hourly runs and the rollups in {time.monotonic() - started:.0f} s", file=sys.stderr
                )
                hourly = runs[HOURLY_JOB]
                daily_days = {r.dagster_run.tags.get("dagster/partition") for r in runs[DAILY_JOB]}
        finally:
            daemon.terminate()
            daemon.wait(timeout=60)

    # One run per hour of the two days, each tagged as the backfill's; at most two at once (the queue's
    # `dagster/backfill` limit), and more than one: the queue ran them side by side.
    assert sorted(r.dagster_run.tags["dagster/partition"] for r in hourly) == sorted(
        f"{day}-{hour:02d}:00" for day in (FIRST_DAY, LAST_DAY) for hour in range(24)
    )
    assert all("dagster/backfill" in r.dagster_run.tags for r in hourly)
    at_once = _overlap([(r.start_time, r.end_time) for r in hourly])
    assert at_once == 2, f"{at_once} hourly runs at once"
    assert {FIRST_DAY, LAST_DAY} <= daily_days

    cli = tmp_path / "cli"
    cli.mkdir()
    backfill = subprocess.run(
        [str(CHECKOUT_BIN / "chargeback"), "backfill", FIRST_DAY, LAST_DAY],
        cwd=cli, env=clean_environment(DAGSTER_HOME=cli / "dagster_home", **SMALL_DAYS),
        capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert backfill.returncode == 0, backfill.stdout + backfill.stderr
    by_cli = published_files(cli / "data" / "reports")
    assert by_cli
    assert published_files(Path(tmp_path / "reports")) == by_cli
