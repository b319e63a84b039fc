"""A source proves it saw its input: the folder source fails (at once, never retried) on a missing or
unreadable folder or file, an empty file, or an hour no file covers, naming the path; an hour that
really had no rows is declared with an `_EMPTY_` marker, which is logged and recorded."""

import gzip
import json
import logging
import os
import re
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import pytest

from chargeback_pipeline.sources.base import PermanentSourceError, SourceInputError, TimeWindow, TransientSourceError
from chargeback_pipeline.sources.folder import FolderSource, SourceFileError
from chargeback_pipeline.sources.folder import source as folder_source
from chargeback_pipeline.sources.folder.resource import FolderSourceResource
from chargeback_pipeline_tests.conftest import ASSETS, local_resources
from chargeback_pipeline_tests.folder_data import DAY, NO_METRICS, gateway, llm, write_export

GATEWAY, LLM, METRICS = "ApiManagementGatewayLogs", "ApiManagementGatewayLlmLog", "metrics"
MARGIN = timedelta(minutes=10)


def hour(h: int, day: str = DAY) -> TimeWindow:
    start = datetime.fromisoformat(day).replace(hour=h, tzinfo=UTC)
    return TimeWindow(start, start + timedelta(hours=1))


def with_margin(window: TimeWindow) -> TimeWindow:
    return TimeWindow(window.start - MARGIN, window.end + MARGIN)


def write_lines(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


@pytest.fixture
def export(tmp_path) -> Path:
    """The hand-made export: its quiet hours and its missing metrics are declared by markers."""
    return write_export(tmp_path / "export")


def source_of(root: Path) -> FolderSource:
    return FolderSource(root)


def denied(monkeypatch, *paths: Path) -> None:
    """`paths` cannot be read, as for a user without permission (these tests may run as root)."""
    refused = {str(path) for path in paths}
    real_access = os.access
    monkeypatch.setattr(
        folder_source.os, "access", lambda path, mode: str(path) not in refused and real_access(path, mode)
    )


# --- folders ---------------------------------------------------------------------------------------------


def test_the_export_as_written_is_seen_hour_by_hour(export):
    source = source_of(export)
    assert source.gateway_logs(hour(8)).rows.num_rows == 2 and source.gateway_logs(hour(8)).declared_empty is None
    assert source.llm_logs(with_margin(hour(11))).rows.num_rows == 2  # 10:59:59.5's record, 11:59:58
    assert source.gateway_logs(hour(3)).declared_empty  # a quiet hour, declared


def test_a_missing_root_fails_naming_it(tmp_path):
    with pytest.raises(SourceInputError, match=rf"source folder {tmp_path / 'nowhere'} does not exist"):
        source_of(tmp_path / "nowhere").gateway_logs(hour(8))


def test_an_empty_root_fails_naming_the_table_folder_it_lacks(tmp_path):
    (tmp_path / "export").mkdir()
    with pytest.raises(SourceInputError) as missing:
        source_of(tmp_path / "export").gateway_logs(hour(8))
    assert f"table folder {tmp_path / 'export' / GATEWAY} does not exist" in str(missing.value)
    assert "the source folder holds: nothing" in str(missing.value)


@pytest.mark.parametrize(
    ("folder", "fetch"),
    [(GATEWAY, "gateway_logs"), (LLM, "llm_logs"), (METRICS, "deployment_metrics")],
)
def test_a_missing_table_folder_fails_naming_it_and_what_the_root_holds(export, folder, fetch):
    renamed = export / f"{folder}-old"
    (export / folder).rename(renamed)

    with pytest.raises(SourceInputError) as missing:
        getattr(source_of(export), fetch)(hour(8))

    assert f"table folder {export / folder} does not exist" in str(missing.value)
    assert renamed.name in str(missing.value)  # a typo is easy to spot


@pytest.mark.parametrize("folder", [GATEWAY, METRICS])
def test_an_unreadable_table_folder_fails_naming_it(export, monkeypatch, folder):
    denied(monkeypatch, export / folder)
    fetch = source_of(export).gateway_logs if folder == GATEWAY else source_of(export).deployment_metrics
    with pytest.raises(SourceInputError, match=rf"folder {export / folder} cannot be read: Permission denied"):
        fetch(hour(8))


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file, whatever its mode")
def test_an_unreadable_folder_below_the_table_fails_for_real(export):
    nested = export / GATEWAY / "y=2026" / "m=03"
    nested.chmod(0)
    try:
        with pytest.raises(SourceInputError, match=rf"folder {nested} cannot be read"):
            source_of(export).gateway_logs(hour(8))
    finally:
        nested.chmod(0o755)


def test_a_table_folder_that_is_a_symlink_is_followed(export, tmp_path, caplog):
    mounted = tmp_path / "mounted-share" / LLM
    mounted.parent.mkdir()
    (export / LLM).rename(mounted)
    (export / LLM).symlink_to(mounted, target_is_directory=True)

    with caplog.at_level(logging.INFO, logger=folder_source.LOGGER.name):
        fetched = source_of(export).llm_logs(with_margin(hour(9)))

    assert set(fetched.rows["CorrelationId"].to_pylist()) == {"c-02", "c-03", "c-04"}
    assert f"is a symlink to {mounted}: following it" in caplog.text


def test_a_dangling_table_folder_symlink_fails_naming_it_and_its_target(export, tmp_path):
    (export / METRICS).rename(tmp_path / "moved-away")
    (export / METRICS).symlink_to(tmp_path / "unmounted", target_is_directory=True)

    with pytest.raises(SourceInputError, match=rf"table folder {export / METRICS} is a symlink to .*unmounted"):
        source_of(export).deployment_metrics(hour(8))


def test_a_symlink_loop_is_read_once(export):
    (export / GATEWAY / "y=2026" / "loop").symlink_to(export / GATEWAY, target_is_directory=True)
    assert source_of(export).gateway_logs(hour(8)).rows.num_rows == 2


# --- files -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("empty.jsonl", b""),
        ("newlines.jsonl", b"\n\n\n"),
        ("blanks.json", b"  \n\t\n "),
        ("nothing.jsonl.gz", gzip.compress(b"", mtime=0)),
        ("newlines.jsonl.gz", gzip.compress(b"\n\n", mtime=0)),
        ("empty-array.json", b"[]"),
    ],
    ids=lambda value: value if isinstance(value, str) else "",
)
def test_an_empty_file_fails_naming_it(export, name, content):
    (export / LLM / name).write_bytes(content)
    with pytest.raises(SourceFileError, match=rf"source file {export / LLM / name} is empty"):
        source_of(export).llm_logs(with_margin(hour(8)))


def test_an_unreadable_file_fails_naming_it(export, monkeypatch):
    part = export / GATEWAY / "y=2026" / "m=03" / "part-2.jsonl"
    denied(monkeypatch, part)
    with pytest.raises(SourceFileError, match=rf"source file {part} cannot be read: Permission denied"):
        source_of(export).gateway_logs(hour(8))


def test_a_broken_symlink_fails_naming_it(export, tmp_path):
    link = export / LLM / "day-2.jsonl"
    link.symlink_to(tmp_path / "gone.jsonl")
    with pytest.raises(SourceInputError, match=rf"{link} is a symlink to {tmp_path / 'gone.jsonl'}, which does not"):
        source_of(export).llm_logs(with_margin(hour(8)))


def test_a_gzipped_json_file_is_read_and_other_files_are_named_in_a_warning(export, caplog):
    (export / GATEWAY / f"_EMPTY_{DAY}T03").unlink()  # the hour the new file fills
    with gzip.open(export / GATEWAY / "extra.json.gz", "wt") as file:
        file.write(json.dumps(gateway("c-40", "03:30:00", "alpha")) + "\n")
    (export / GATEWAY / "forgotten.csv").write_text("TimeGenerated,CorrelationId\n")
    (export / GATEWAY / "_SUCCESS").write_text("")

    with caplog.at_level(logging.WARNING, logger=folder_source.LOGGER.name):
        fetched = source_of(export).gateway_logs(hour(3))

    assert fetched.rows["CorrelationId"].to_pylist() == ["c-40"] and fetched.declared_empty is None
    assert "Ignored 1 files" in caplog.text and "forgotten.csv" in caplog.text and "_SUCCESS" not in caplog.text


# --- windows no file covers, and declared ones ------------------------------------------------------------


def test_a_table_folder_without_data_files_fails(tmp_path):
    export = write_export(tmp_path / "export")
    for data in (export / LLM).glob("*.json"):
        data.unlink()
    for marker in (export / LLM).glob("_EMPTY_*"):
        marker.unlink()

    with pytest.raises(SourceInputError) as uncovered:
        source_of(export).llm_logs(with_margin(hour(8)))
    assert f"no file in {export / LLM} covers {hour(8)}" in str(uncovered.value)
    assert "it holds no data file" in str(uncovered.value)


def test_an_hour_no_file_covers_fails_saying_which_marker_declares_it(export):
    (export / GATEWAY / f"_EMPTY_{DAY}T03").unlink()

    with pytest.raises(SourceInputError) as uncovered:
        source_of(export).gateway_logs(hour(3))

    message = str(uncovered.value)
    assert f"no file in {export / GATEWAY} covers {hour(3)}" in message
    assert "its 2 files hold rows from 2026-03-10T08:15:00.123456+00:00 to 2026-03-10T23:59:59.900000+00:00" in message
    assert f"create {export / GATEWAY / f'_EMPTY_{DAY}T03'} (one per hour, or _EMPTY_{DAY} for the day)" in message
    assert isinstance(uncovered.value, PermanentSourceError) and not isinstance(uncovered.value, TransientSourceError)


def test_a_missing_hour_between_files_fails_even_for_the_llm_window_with_margins(tmp_path):
    root = tmp_path / "export"
    write_lines(root / GATEWAY / "h08.jsonl", [gateway("c-1", "08:30:00", "alpha")])
    write_lines(root / LLM / "h08.jsonl", [llm("c-1", "08:55:00", 1, 1)])
    write_lines(root / LLM / "h10.jsonl", [llm("c-3", "10:05:00", 1, 1)])  # the 09:00 file was never exported

    with pytest.raises(SourceInputError, match=re.escape(f"covers {hour(9)}")):
        source_of(root).llm_logs(with_margin(hour(9)))  # its margins overlap both neighbours' files
    assert source_of(root).llm_logs(with_margin(hour(8))).rows.num_rows == 1


def test_a_marker_declares_an_hour_empty_with_its_reason_and_it_is_logged(export, caplog):
    marker = export / GATEWAY / f"_EMPTY_{DAY}T05"
    marker.write_text("APIM maintenance window,\n no traffic")

    with caplog.at_level(logging.WARNING, logger=folder_source.LOGGER.name):
        fetched = source_of(export).gateway_logs(hour(5))

    assert fetched.rows.num_rows == 0
    assert fetched.declared_empty == f"{hour(5)} declared empty by {marker} (APIM maintenance window, no traffic)"
    assert fetched.declared_empty in caplog.text


def test_a_day_marker_declares_every_hour_and_metrics_can_be_declared_absent(export):
    source = source_of(export)
    for h in (0, 13, 23):
        assert NO_METRICS in source.deployment_metrics(hour(h)).declared_empty
    assert source.gateway_logs(hour(4, "2026-03-11")).declared_empty.endswith("(no requests in this period)")


def test_a_stale_marker_beside_rows_of_its_hour_is_an_error_naming_both(export):
    late = write_lines(export / GATEWAY / "late.jsonl", [gateway("c-50", "05:20:00", "alpha")])  # hour 05 declared
    with pytest.raises(SourceInputError) as failure:
        source_of(export).gateway_logs(hour(5))
    marker = export / GATEWAY / f"_EMPTY_{DAY}T05"
    assert f"empty-window marker {marker} declares {hour(5)} empty, but 1 row(s)" in str(failure.value)
    assert str(late) in str(failure.value)
    late.unlink()


@pytest.mark.parametrize("name", ["_EMPTY_2026-03-10T3", "_EMPTY_10.03.2026", "_EMPTY_2026-02-30", "_EMPTY_"])
def test_a_malformed_marker_fails_naming_it(export, name):
    (export / METRICS / name).write_text("")
    with pytest.raises(SourceInputError, match=rf"{export / METRICS / name} is not an empty-window marker"):
        source_of(export).deployment_metrics(hour(8))


# --- in the pipeline: recorded, and never retried ---------------------------------------------------------


def test_a_declared_hour_is_recorded_on_its_materialization(tmp_path, instance):
    export = write_export(tmp_path / "export")
    result = dg.materialize(
        ASSETS,
        selection=["raw_gateway_logs", "raw_deployment_metrics"],
        partition_key=f"{DAY}-03:00",
        resources=local_resources(tmp_path, FolderSourceResource(source_folder=str(export))),
        instance=instance,
    )

    metadata = {
        event.asset_key.to_user_string(): event.step_materialization_data.materialization.metadata
        for event in result.get_asset_materialization_events()
    }
    assert metadata["raw_gateway_logs"]["declared_empty"].value.endswith(
        f"_EMPTY_{DAY}T03 (no requests in this period)"
    )
    assert NO_METRICS in metadata["raw_deployment_metrics"]["declared_empty"].value


def test_a_missing_export_fails_the_step_at_once_without_step_retries(tmp_path, instance):
    export = write_export(tmp_path / "export")
    (export / GATEWAY / f"_EMPTY_{DAY}T03").unlink()
    source = FolderSourceResource(source_folder=str(export), step_retries=3, step_retry_delay_seconds=30)

    started = time.monotonic()
    result = dg.materialize(
        ASSETS,
        selection=["raw_gateway_logs"],
        partition_key=f"{DAY}-03:00",
        resources=local_resources(tmp_path, source),
        instance=instance,
        raise_on_error=False,
    )

    assert not result.success and time.monotonic() - started < 30  # a step retry would wait 30 s
    [failure] = [event for event in result.all_events if event.is_step_failure]
    assert f"no file in {export / GATEWAY} covers" in str(failure.step_failure_data.error.cause)
    assert not [event for event in result.all_events if event.event_type == dg.DagsterEventType.STEP_UP_FOR_RETRY]
