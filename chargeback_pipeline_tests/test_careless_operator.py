"""A careless operator's mistakes, as the `chargeback` command meets them (run as a subprocess): each ends
in a clear error or a counted rejection, never in a half-published day (issue 24, cases 4 to 7 and 9)."""

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import pyarrow.parquet as pq
import pytest

from chargeback_pipeline_tests.conftest import REPO
from chargeback_pipeline_tests.folder_data import DAY, GATEWAY_ROWS, LLM_ROWS, gateway, llm, write_export
from chargeback_pipeline_tests.test_cli import chargeback, last_line


def folder_backfill(tmp_path: Path, export: Path, *args: str, **overrides):
    return chargeback(
        tmp_path, "backfill", DAY, *args, CHARGEBACK_SOURCE="folder", CHARGEBACK_SOURCE_FOLDER=str(export), **overrides
    )


def test_a_leftover_day_marker_beside_half_a_day_fails_naming_both(tmp_path):
    morning = [row for row in GATEWAY_ROWS if row["TimeGenerated"][11:13] < "12"]
    export = write_export(tmp_path / "export", morning, LLM_ROWS)
    marker = export / "ApiManagementGatewayLogs" / f"_EMPTY_{DAY}"
    marker.write_text("left over from last month's test")

    result = folder_backfill(tmp_path, export)

    assert result.returncode == 1, result.stdout + result.stderr
    assert f"empty-window marker {marker} declares {DAY}T00:00:00+00:00/" in result.stderr
    assert "ApiManagementGatewayLogs/y=2026/m=03/part-" in result.stderr
    assert not (tmp_path / "reports" / f"daily/usage_date={DAY}").exists()


def test_metric_values_out_of_bounds_are_rejected_counted_and_named(tmp_path):
    export = write_export(tmp_path / "export")
    metrics = export / "metrics"
    (metrics / f"_EMPTY_{DAY}").unlink()  # the day now has metrics in hour 08: the other hours are declared
    for hour in range(24):
        if hour != 8:
            (metrics / f"_EMPTY_{DAY}T{hour:02}").write_text("hand-made export: no metrics this hour")
    resource = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.CognitiveServices/accounts/aoai-ptu-eastus"

    def metric(total) -> str:
        row = {"TimeStamp": f"{DAY}T08:00:00Z", "ResourceId": resource, "ModelDeploymentName": "gpt-4.1"}
        return json.dumps(row | {"MetricName": "ProcessedPromptTokens", "Total": total}) + "\n"

    (metrics / "hour08.jsonl").write_text(metric(-5) + metric(2**63 - 1) + metric(1.5))

    result = folder_backfill(tmp_path, export)

    output = result.stdout + result.stderr
    assert "Traceback" not in output and "OverflowError" not in output
    assert "raw_deployment_metrics: 3 row(s) in 1 hour(s)" in result.stdout, output
    assert "Total -5 is negative (1)" in result.stdout
    assert f"Total {2**63 - 1} is above 1,000,000,000,000 a deployment-hour (1)" in result.stdout
    assert "Total" in result.stdout.split("raw_deployment_metrics:")[1].split("\n")[0].split("; ")[-1]


def test_backfill_today_is_refused_before_anything_runs(tmp_path):
    today = datetime.now(UTC).date()
    for args in (["today"], [str(today - timedelta(days=1)), "today"]):
        done = chargeback(tmp_path, "backfill", *args, timeout=60)

        assert done.returncode == 2, done.stderr
        assert f"{today} is today (UTC) and not over: only complete days are backfilled" in last_line(done.stderr)
        assert "Traceback" not in done.stderr and done.stdout == ""
        assert not (tmp_path / "dagster_home").exists()  # refused before anything ran


@pytest.mark.parametrize("flag", ["--publish-despite-blocked-reconciliation", "--publish-despite-shrink"])
@pytest.mark.parametrize("reason", ["", "   "])
def test_an_override_without_a_reason_is_refused_before_anything_runs(tmp_path, flag, reason):
    # The reason is recorded beside what the override publishes: an empty one was taken as no override (the
    # day held, then the flag just given suggested), a blank one recorded as the reason.
    yesterday = datetime.now(UTC).date() - timedelta(days=1)
    done = chargeback(tmp_path, "backfill", str(yesterday), flag, reason, timeout=60)
    assert done.returncode == 2, done.stderr
    assert "the reason is recorded with what it publishes: give one (not blank)" in done.stderr
    assert "Traceback" not in done.stderr and not (tmp_path / "dagster_home").exists()


def test_what_report_suggests_running_is_a_command_the_cli_accepts(tmp_path):
    today = datetime.now(UTC).date()
    for period in ("today", f"{today:%Y-%m}"):
        missing = chargeback(tmp_path, "report", period, timeout=60)
        assert missing.returncode == 2, missing.stderr
        suggested = missing.stderr.split("`")[1] if "`" in missing.stderr else None
        if suggested is None:  # today, or a month whose first day has not ended
            assert "not over" in missing.stderr or "no day of it has ended yet" in missing.stderr, missing.stderr
            continue
        command, *args = suggested.split()
        assert command == "chargeback" and args[0] == "backfill" and str(today) not in args, suggested
        assert args[-1] == str(today - timedelta(days=1)), suggested


def test_a_simulated_export_is_never_written_for_days_to_come(tmp_path):
    tomorrow = datetime.now(UTC).date() + timedelta(days=1)
    export = {"CHARGEBACK_COST_EXPORT_DIR": str(tmp_path / "msexports")}
    done = chargeback(tmp_path, "simulate-cost-export", "--as-of", str(tomorrow), timeout=60, **export)
    assert done.returncode == 2 and f"{tomorrow} is after today" in done.stderr, done.stderr
    before = chargeback(tmp_path, "simulate-cost-export", "--as-of", "2020-01-01", timeout=60, **export)
    assert before.returncode == 2 and "is before the partitions' first day" in before.stderr, before.stderr
    assert not (tmp_path / "msexports").exists()


def edited(tmp_path: Path, example: str, old: str, new: bytes) -> str:
    """A copy of the repository's example file with one value replaced."""
    text = (REPO / example).read_bytes()
    assert old.encode() in text
    path = tmp_path / f"{len(list(tmp_path.glob('*.yaml')))}-{example}"
    path.write_bytes(text.replace(old.encode(), new, 1))
    return str(path)


def settings_cases(tmp_path: Path) -> dict[str, tuple[dict, str]]:
    """Each mistaken setting: the variables, and what the error line must say."""
    pricing = "CHARGEBACK_PRICING_FILE"
    return {
        "reservation 1e30": (
            {
                pricing: edited(
                    tmp_path,
                    "pricing.example.yaml",
                    "monthly_reservation_per_ptu: 260.00",
                    b"monthly_reservation_per_ptu: 1e30",
                )
            },
            f"{pricing}=",
        ),
        "ptu_count 1e20": (
            {pricing: edited(tmp_path, "pricing.example.yaml", "ptu_count: 65", b"ptu_count: 100000000000000000000")},
            "less than or equal to 100000",
        ),
        "pricing not UTF-8": (
            {pricing: edited(tmp_path, "pricing.example.yaml", "ptu_count: 65", b"ptu_count: 65 # \xff\xfe")},
            "is not UTF-8 text",
        ),
        "budget 1e26": (
            {"CHARGEBACK_BUDGETS_FILE": edited(tmp_path, "budgets.example.yaml", "amount: 20000", b"amount: 1e26")},
            "CHARGEBACK_BUDGETS_FILE=",
        ),
        "budgets not UTF-8": (
            {
                "CHARGEBACK_BUDGETS_FILE": edited(
                    tmp_path, "budgets.example.yaml", "amount: 20000", b"amount: 20000 # \xff"
                )
            },
            "is not UTF-8 text",
        ),
        "connection string": (
            {"CHARGEBACK_BLOB_CONNECTION_STRING": "AccountKey=s3cr3t-key"},
            "CHARGEBACK_BLOB_CONNECTION_STRING: is not an Azure Storage connection string",
        ),
        "table name": (
            {
                "CHARGEBACK_SOURCE": "folder",
                "CHARGEBACK_SOURCE_FOLDER": str(tmp_path),
                "CHARGEBACK_GATEWAY_TABLE": "Logs | take 1",
            },
            "CHARGEBACK_GATEWAY_TABLE: String should match pattern",
        ),
    }


def test_every_mistaken_setting_is_refused_at_load_naming_it(tmp_path):
    for name, (variables, expected) in settings_cases(tmp_path).items():
        done = chargeback(tmp_path, "backfill", DAY, timeout=60, **variables)

        assert done.returncode != 0, name
        assert expected in done.stderr, f"{name}: {done.stderr}"
        assert "Traceback" not in done.stderr and "s3cr3t" not in done.stderr, name
        assert not (tmp_path / "lake").exists(), name  # refused before anything ran


def test_an_empty_variable_is_unset_and_a_misspelt_one_is_warned_about(tmp_path):
    done = chargeback(
        tmp_path, "backfill", "2025-12-31", timeout=60, CHARGEBACK_OUTPUT_DIR="", CHARGEBACK_LAKE_DIRR="/tmp/lake"
    )
    assert "CHARGEBACK_LAKE_DIRR is not a chargeback setting and is ignored; did you mean CHARGEBACK_LAKE_DIR?" in (
        done.stderr
    )
    from chargeback_pipeline.settings import load_settings

    empty = {"CHARGEBACK_OUTPUT_DIR": ""}
    with pytest.MonkeyPatch.context() as patch:
        for variable, value in empty.items():
            patch.setenv(variable, value)
        assert str(load_settings().output_dir) == "data/reports"


MARKUP = "[click](http://evil.example)![x](http://evil.example/x.png) *bold* \u202egnp.exe\r\nsecond line"
TRAVERSAL = "../../../etc"
LONG = "p" * 100_000


def test_identifiers_reach_markdown_ids_and_the_terminal_as_text(tmp_path):
    hostile = [(f"c-{20 + n}", f"14:{n:02}:00", product) for n, product in enumerate((MARKUP, TRAVERSAL, LONG))]
    gateway_rows = GATEWAY_ROWS + [gateway(cid, time, product) for cid, time, product in hostile]
    llm_rows = LLM_ROWS + [llm(cid, time[:-2] + "01", 10, 10) for cid, time, _ in hostile]
    export = write_export(tmp_path / "export", gateway_rows, llm_rows)
    assert folder_backfill(tmp_path, export).returncode in (0, 1)

    report = chargeback(tmp_path, "report", DAY, timeout=120)
    assert report.returncode == 0, report.stderr
    assert "\r" not in report.stdout and "\u202e" not in report.stdout and "\\u202e" in report.stdout
    assert max(len(line) for line in report.stdout.splitlines()) < 400  # the 100 KB name is cut
    assert "(100,000 characters)" in report.stdout

    focus = pq.read_table(tmp_path / "reports" / f"daily/usage_date={DAY}/focus.parquet")
    ids = set(focus["AllocatedResourceId"].to_pylist())
    assert "apim/products/..%2F..%2F..%2Fetc/subscriptions/sub-1" in ids
    assert not any(i and "../" in i for i in ids)

    instance = dg.DagsterInstance.from_config(str(tmp_path / "dagster_home"))
    event = instance.get_latest_materialization_event(dg.AssetKey("daily_chargeback"))
    markdown = event.asset_materialization.metadata["cost_by_product"].value
    assert "\\[click\\](http" in markdown and "[click](" not in markdown and "\u202e" not in markdown
