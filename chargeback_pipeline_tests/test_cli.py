"""The `chargeback` command as a user meets it: the installed command run as a subprocess (or click's
CliRunner where a subprocess is impractical), judged by its exit code and the exact line it prints.

Never a traceback for a user's mistake; failed checks summarized and reaching the exit code; a Dagster
instance that survives concurrent first starts, killed processes and a full disk.
"""

import os
import shutil
import signal
import subprocess
import sys
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import dagster as dg
import pytest
import yaml
from click.testing import CliRunner

from chargeback_pipeline import settings
from chargeback_pipeline.cli.backfill import backfill
from chargeback_pipeline.cli.check_summary import ADVICE, command_failures, has_errors, summaries
from chargeback_pipeline.cli.commands import DEFAULT_INSTANCE_YAML, main
from chargeback_pipeline.defs.reconciliation.checks import RECONCILES
from chargeback_pipeline.defs.resources import DataQualityPolicy
from chargeback_pipeline.sources.simulated.resource import SimulatedSourceResource
from chargeback_pipeline_tests.conftest import REPO, local_resources, pipeline
from chargeback_pipeline_tests.folder_data import DAY as FOLDER_DAY
from chargeback_pipeline_tests.folder_data import GATEWAY_ROWS, LLM_ROWS, gateway, write_export

CHARGEBACK = str(Path(sys.executable).with_name("chargeback"))
DAY = "2026-11-20"
FOLDER_HOURS = f"{FOLDER_DAY}-00:00..{FOLDER_DAY}-23:00"


def environment(tmp_path: Path, **overrides) -> dict:
    """The process environment without CHARGEBACK_* settings of the caller's, pointed into tmp_path.

    50 simulated requests an hour keep a day fast. At that volume chance decides checks made for real
    volumes: one or two orphan LLM records (the simulator's 0.5%) make an hour look incomplete to
    `gateway_log_complete`, a few bypassing requests leave a deployment-hour unreconciled. So hours are
    judged for completeness from 100 requests on, and reconciled from 10^9 metered tokens: these tests are
    about the command, not those checks (test_checks.py is).
    """
    env = {name: value for name, value in os.environ.items() if not name.startswith(("CHARGEBACK_", "DAGSTER_"))}
    settings = {
        "DAGSTER_HOME": tmp_path / "dagster_home",
        "CHARGEBACK_LAKE_DIR": tmp_path / "lake",
        "CHARGEBACK_OUTPUT_DIR": tmp_path / "reports",
        "CHARGEBACK_SIMULATED_REQUESTS_PER_HOUR": 50,
        "CHARGEBACK_GATEWAY_COMPLETENESS_MIN_REQUESTS": 100,
        "CHARGEBACK_RECONCILIATION_MIN_TOKENS": 10**9,
    }
    return env | {name: str(value) for name, value in (settings | overrides).items()}


def chargeback(tmp_path: Path, *args: str, timeout: float = 300, **overrides) -> subprocess.CompletedProcess:
    return subprocess.run(
        [CHARGEBACK, *args],
        env=environment(tmp_path, **overrides),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def last_line(text: str) -> str:
    return text.strip().splitlines()[-1]


# ---- 1. arguments: click's usage error (exit 2), one clear line, no instance touched -----------------

TODAY = datetime.now(UTC).date()
TOMORROW = TODAY + timedelta(days=1)
USAGE_ERRORS = {
    "days-per-run 0": (
        ["backfill", DAY, "--days-per-run", "0"],
        "Error: Invalid value for '--days-per-run': 0 is not in the range 1<=x<=366.",
    ),
    "days-per-run 367": (
        ["backfill", DAY, "--days-per-run", "367"],
        "Error: Invalid value for '--days-per-run': 367 is not in the range 1<=x<=366.",
    ),
    "last before first": (
        ["backfill", DAY, "2026-11-19"],
        f"Error: Invalid value for 'LAST_DAY': 2026-11-19 is before FIRST_DAY {DAY}",
    ),
    "after today": (
        ["backfill", str(TOMORROW)],
        f"Error: Invalid value for 'FIRST_DAY': {TOMORROW} is after today ({TODAY}, UTC): "
        "there is no usage to bill yet",
    ),
    "before the partitions": (
        ["backfill", "2025-12-31"],
        "Error: Invalid value for 'FIRST_DAY': 2025-12-31 is before the partitions' first day 2026-01-01 "
        "(CHARGEBACK_PARTITIONS_START)",
    ),
    "not a day": (
        ["backfill", "2026-02-30"],
        "Error: Invalid value for 'FIRST_DAY': '2026-02-30' is not a day (YYYY-MM-DD, 'today' or 'yesterday')",
    ),
    "verify a day after today": (
        ["verify-simulated", str(TOMORROW)],
        f"Error: Invalid value for 'DAY': {TOMORROW} is after today ({TODAY}, UTC): there is no usage to bill yet",
    ),
}


@pytest.mark.parametrize(("args", "line"), USAGE_ERRORS.values(), ids=USAGE_ERRORS.keys())
def test_bad_arguments_are_a_usage_error_of_one_line(tmp_path, args, line):
    done = chargeback(tmp_path, *args, timeout=60)

    assert done.returncode == 2, done.stderr
    assert last_line(done.stderr) == line
    assert "Traceback" not in done.stderr and done.stdout == ""
    assert not (tmp_path / "dagster_home").exists()  # rejected before anything ran


USER_ERRORS = {
    "verify a non-simulated source": (
        ["verify-simulated", DAY],
        {"CHARGEBACK_SOURCE": "folder", "CHARGEBACK_SOURCE_FOLDER": "."},
        "Error: verify-simulated compares with the simulator: set CHARGEBACK_SOURCE=simulated",
    ),
    "verify a missing report": (
        ["verify-simulated", DAY],
        {},
        "Error: no report at {reports}/daily/usage_date=2026-11-20/product_usage.parquet: "
        "run `chargeback backfill 2026-11-20` first",
    ),
    "verify with a missing source setting": (
        ["verify-simulated", DAY],
        {"CHARGEBACK_SOURCE": "folder"},
        "Error: invalid chargeback configuration (CHARGEBACK_SOURCE=folder): CHARGEBACK_SOURCE_FOLDER: Field required",
    ),
    "backfill with a malformed setting": (
        ["backfill", DAY],
        {"CHARGEBACK_CATCHUP_HOURS": "three days"},
        "Error: invalid chargeback configuration: CHARGEBACK_CATCHUP_HOURS: Input should be a valid integer, "
        "unable to parse string as an integer",
    ),
}


@pytest.mark.parametrize(("args", "env", "line"), USER_ERRORS.values(), ids=USER_ERRORS.keys())
def test_user_errors_are_one_line_and_exit_1(tmp_path, args, env, line):
    done = chargeback(tmp_path, *args, timeout=120, **env)

    assert done.returncode == 1, done.stderr
    assert last_line(done.stderr) == line.format(reports=tmp_path / "reports")
    assert "Traceback" not in done.stderr


# ---- 4. failed checks: a paragraph each; ERROR fails the command after the whole backfill ---------------


def test_failed_checks_are_summarized_with_asset_partitions_numbers_and_what_to_do(tmp_path, instance):
    lost = "2026-11-20T14:00:00+00:00"
    source = SimulatedSourceResource(
        simulated_requests_per_hour=400,
        simulated_faults={"nonzero_chunk_token_fraction": 0.5},
        simulated_missing_gateway_hours=[lost],
    )
    policy = DataQualityPolicy(reconciliation_min_tokens=10**9)  # the lost hour is about the gateway check
    resources = local_resources(tmp_path, source, policy)
    chunks = backfill(date(2026, 11, 20), date(2026, 11, 20), pipeline(resources), instance)

    checks = [pair for chunk in chunks for pair in chunk.checks_with_partitions()]
    paragraphs = summaries(checks)

    assert has_errors(checks)
    assert paragraphs[0] == (
        "ERROR: check gateway_log_complete of asset attributed_requests failed for partitions "
        "2026-11-20-00:00..2026-11-20-23:00. Numbers: hours_checked=24, incomplete_hours=[2026-11-20 14:00], "
        "max_percent_without_gateway_row=100, threshold_percent=5, minimum_llm_requests_judged=20. "
        f"What to do: {ADVICE['gateway_log_complete']}"
    )
    [warning] = [p for p in paragraphs if "tokens_only_from_sequence_zero" in p]
    assert warning.startswith(
        "WARNING: check tokens_only_from_sequence_zero of asset attributed_requests failed for partitions "
        "2026-11-20-00:00..2026-11-20-23:00: Tokens on SequenceNumber > 0 are never counted; this flags records "
        "that carry any. Numbers: later_chunks_with_tokens="
    )
    assert warning.endswith(f"What to do: {ADVICE['tokens_only_from_sequence_zero']}")
    levels = [paragraph.split(":")[0] for paragraph in paragraphs]
    assert levels == sorted(levels)  # every ERROR before any WARNING


def test_a_blocked_reconciliation_published_by_override_is_summarized_and_exits_0(tmp_path):
    # Any gap blocks: the simulator's 1% of tokens bypassing APIM blocks every busy deployment-day.
    strict = {
        "CHARGEBACK_RECONCILIATION_WARN_PERCENT": 0,
        "CHARGEBACK_RECONCILIATION_BLOCK_PERCENT": 0,
        "CHARGEBACK_RECONCILIATION_MIN_TOKENS": 1000,
    }

    blocked = chargeback(tmp_path, "backfill", DAY, **strict)
    published = chargeback(tmp_path, "backfill", DAY, "--publish-despite-blocked-reconciliation", "INC-7", **strict)

    assert blocked.returncode == 1
    assert last_line(blocked.stderr).startswith(f"error: days {DAY}..{DAY} failed (run ")
    assert f"  ERROR: check {RECONCILES} of asset daily_reconciliation failed for partitions {DAY}: " in blocked.stderr
    assert published.returncode == 0, published.stderr
    assert (
        f"  ERROR (overridden: 'INC-7'): check {RECONCILES} of asset daily_reconciliation failed for partitions {DAY}: "
    ) in published.stderr
    assert f"    usage:       {tmp_path}/reports/daily/usage_date={DAY}/product_usage.csv" in published.stdout


def test_only_error_checks_not_overridden_fail_the_command():
    def evaluation(check: str, severity: dg.AssetCheckSeverity) -> dg.AssetCheckEvaluation:
        return dg.AssetCheckEvaluation(
            asset_key=dg.AssetKey("daily_reconciliation"),
            check_name=check,
            passed=False,
            severity=severity,
            metadata={"blocked": [f"deployment-day {n}" for n in range(7)], "unattributed_tokens": 1234},
        )

    checks = [
        (evaluation("some_warning", dg.AssetCheckSeverity.WARN), "2026-11-20"),
        (evaluation(RECONCILES, dg.AssetCheckSeverity.ERROR), "2026-11-20"),
    ]

    assert command_failures(checks) == [f"daily_reconciliation:{RECONCILES}"]
    assert command_failures(checks, override_reason="INC-7") == []
    assert summaries(checks, override_reason="INC-7")[0] == (
        f"ERROR (overridden: 'INC-7'): check {RECONCILES} of asset daily_reconciliation failed for partitions "
        "2026-11-20. Numbers: blocked=[deployment-day 0, deployment-day 1, deployment-day 2, deployment-day 3, "
        f"deployment-day 4, +2 more], unattributed_tokens=1234. What to do: {ADVICE[RECONCILES]}"
    )
    assert summaries(checks)[1].startswith("WARNING: check some_warning of asset daily_reconciliation failed")


@pytest.fixture
def folder_environment(tmp_path, monkeypatch):
    """CHARGEBACK_* variables for the folder source on an export in tmp_path, for CliRunner."""
    for name, value in environment(tmp_path, CHARGEBACK_SOURCE="folder").items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("CHARGEBACK_SOURCE_FOLDER", str(tmp_path / "export"))
    settings.current_settings.cache_clear()
    yield monkeypatch
    settings.current_settings.cache_clear()


def test_warnings_are_printed_and_the_backfill_exits_0(tmp_path, folder_environment):
    later_chunk = {"CorrelationId": "c-02", "SequenceNumber": 1}
    llm_rows = [
        {**row, "PromptTokens": 7, "TotalTokens": 7} if later_chunk.items() <= row.items() else row for row in LLM_ROWS
    ]
    write_export(tmp_path / "export", llm_rows=llm_rows)

    result = CliRunner().invoke(main, ["backfill", FOLDER_DAY])

    assert result.exit_code == 0, result.output
    assert f"    usage:       {tmp_path}/reports/daily/usage_date={FOLDER_DAY}/product_usage.csv" in result.stdout
    assert "failed checks:" in result.stderr
    assert (
        "  WARNING: check tokens_only_from_sequence_zero of asset attributed_requests failed for partitions "
        f"{FOLDER_HOURS}: Tokens on SequenceNumber > 0 are never counted; this flags records that carry any. "
        "Numbers: later_chunks_with_tokens=1, chunked_requests=1. "
        f"What to do: {ADVICE['tokens_only_from_sequence_zero']}"
    ) in result.stderr.splitlines()
    assert "ERROR" not in result.stderr and "Traceback" not in result.output


def test_a_failed_error_check_fails_the_command_after_the_whole_backfill(tmp_path, folder_environment):
    write_export(tmp_path / "export", gateway_rows=[*GATEWAY_ROWS, gateway("", "15:00:00", "alpha")])
    folder_environment.setenv("CHARGEBACK_QUARANTINE_MAX_PERCENT", "0")

    result = CliRunner().invoke(main, ["backfill", FOLDER_DAY])

    assert result.exit_code == 1, result.output
    assert f"    usage:       {tmp_path}/reports/daily/usage_date={FOLDER_DAY}/product_usage.csv" in result.stdout
    assert (
        "  ERROR: check quarantine_rate_within_limit of asset attributed_requests failed for partitions "
        f"{FOLDER_HOURS}. Numbers: quarantined_rows=1, quarantined_percent=9.091, threshold_percent=0, "
        "by_reason={ApiManagementGatewayLogs: CorrelationId is missing: 1}. "
        f"What to do: {ADVICE['quarantine_rate_within_limit']}"
    ) in result.stderr.splitlines()
    assert (
        last_line(result.stderr)
        == "error: 1 check(s) of severity ERROR failed: attributed_requests:quarantine_rate_within_limit"
    )
    assert "Traceback" not in result.output


# ---- 5. the Dagster instance: its settings, concurrent first starts, killed runs, a full disk ---------


def test_the_instance_settings_the_cli_writes_are_the_repositorys(tmp_path):
    repository = yaml.safe_load((REPO / "dagster.yaml").read_text())
    assert yaml.safe_load(DEFAULT_INSTANCE_YAML) == repository

    shutil.copy(REPO / "dagster.yaml", tmp_path / "dagster.yaml")
    with dg.DagsterInstance.from_config(str(tmp_path)) as instance:  # Dagster accepts them
        assert instance.run_monitoring_enabled and instance.run_monitoring_max_resume_run_attempts == 0


def test_concurrent_first_starts_on_a_fresh_dagster_home(tmp_path):
    """Without the instance lock, about every other try fails on `UNIQUE constraint failed: alembic_version`."""
    processes = [
        subprocess.Popen(
            [CHARGEBACK, "backfill", DAY],
            env=environment(
                tmp_path,
                CHARGEBACK_SIMULATED_REQUESTS_PER_HOUR=0,
                CHARGEBACK_LAKE_DIR=tmp_path / f"lake{n}",
                CHARGEBACK_OUTPUT_DIR=tmp_path / f"reports{n}",
            ),
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for n in range(3)
    ]
    outcomes = [(*process.communicate(timeout=300), process.returncode) for process in processes]

    for stdout, stderr, returncode in outcomes:
        assert returncode == 0, stderr
        assert "Traceback" not in stderr and "alembic" not in stderr
        assert "published (CSV, with .parquet beside each):" in stdout


def test_a_run_whose_process_was_killed_is_marked_failed_at_the_next_start(tmp_path):
    home = tmp_path / "dagster_home"
    env = environment(tmp_path, CHARGEBACK_SIMULATED_REQUESTS_PER_HOUR=2000)
    # The schema exists before this test's own process polls the instance beside the backfill: two
    # processes creating a fresh DAGSTER_HOME's SQLite schema at once race on it (`alembic_version`).
    home.mkdir()
    dagster = str(Path(sys.executable).with_name("dagster"))
    subprocess.run([dagster, "instance", "migrate"], env=env, capture_output=True, check=True, timeout=120)
    killed = subprocess.Popen(
        [CHARGEBACK, "backfill", DAY],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline, started = time.monotonic() + 120, []
        while not started and time.monotonic() < deadline and killed.poll() is None:
            time.sleep(0.2)
            if (home / "history" / "runs.db").exists():
                with dg.DagsterInstance.from_config(str(home)) as instance:
                    started = instance.get_runs(filters=dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED]))
        assert started, "the backfill's first run never started"
    finally:
        os.kill(killed.pid, signal.SIGKILL)
        killed.wait(timeout=30)
    [run] = started

    done = chargeback(tmp_path, "backfill", DAY)

    assert done.returncode == 0, done.stderr
    first_line = done.stderr.splitlines()[0]
    assert first_line.startswith(f"run {run.run_id[:8]} (started ")
    assert first_line.endswith(
        f"UTC) marked failed: its chargeback process {killed.pid} on {run.tags['chargeback/process'].split(':')[0]} "
        f"is gone (killed?); partitions {DAY}-00:00..{DAY}-23:00 are left as that run left them: "
        "backfill their days again"
    )
    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert instance.get_run_by_id(run.run_id).status == dg.DagsterRunStatus.FAILURE


def _unshare_works() -> bool:
    if not shutil.which("unshare"):
        return False
    probe = subprocess.run(["unshare", "-Urm", "true"], capture_output=True)
    return probe.returncode == 0


def test_a_dagster_home_on_a_full_disk_gives_one_line(tmp_path):
    """DAGSTER_HOME's run database on /dev/full (every write: ENOSPC): the first write fails."""
    (tmp_path / "dagster_home" / "history").mkdir(parents=True)
    (tmp_path / "dagster_home" / "history" / "runs.db").symlink_to("/dev/full")

    done = chargeback(tmp_path, "backfill", DAY)

    assert done.returncode == 1
    assert last_line(done.stderr).startswith(
        f"Error: the Dagster instance in DAGSTER_HOME={tmp_path / 'dagster_home'} cannot be written "
        "(database or disk is full; "
    )
    assert last_line(done.stderr).endswith(
        "free on its disk): free space there or point DAGSTER_HOME elsewhere, then re-run (a backfill is idempotent)"
    )
    assert "Traceback" not in done.stderr


@pytest.mark.skipif(not _unshare_works(), reason="needs user namespaces (unshare -Urm) to mount a small tmpfs")
def test_a_dagster_home_that_fills_up_during_the_backfill_gives_one_line(tmp_path):
    """A real full disk: DAGSTER_HOME on a 600 KiB tmpfs, which the first run's events fill."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    mount = f'mount -t tmpfs -o size=600k tmpfs "{home}" && exec "{CHARGEBACK}" backfill {DAY}'
    done = subprocess.run(
        ["unshare", "-Urm", "sh", "-c", mount],
        env=environment(tmp_path),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )

    assert done.returncode == 1
    line = last_line(done.stderr)
    assert line.startswith(f"Error: the Dagster instance in DAGSTER_HOME={home} cannot be written (")
    assert " MiB free on its disk): free space there or point DAGSTER_HOME elsewhere" in line
    assert "Traceback" not in done.stderr
