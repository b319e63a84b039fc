"""A careless operator's mistakes, as the `chargeback` command meets them (run as a subprocess): each ends
in a clear error or a counted rejection, never in a half-published day (issue 24, cases 4 to 7 and 9)."""

from pathlib import Path

from chargeback_pipeline_tests.folder_data import DAY, GATEWAY_ROWS, LLM_ROWS, write_export
from chargeback_pipeline_tests.test_cli import chargeback


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
