"""Late rows: a row that reaches the source after its hour was landed is billed by the next tick that re-pulls
the hour, exactly once; a row later than the lookback waits for a backfill; a tick that changes nothing
touches no file."""

import json
from datetime import UTC, date, datetime

import pyarrow.parquet as pq

from chargeback_pipeline.cli.backfill import backfill
from chargeback_pipeline.sources.folder.resource import FolderSourceResource
from chargeback_pipeline_tests.conftest import local_resources, pipeline
from chargeback_pipeline_tests.folder_data import DAY, EXPECTED_REPORT, gateway, llm, write_export
from chargeback_pipeline_tests.ticks import Daemon, partitions_of

ALPHA = next(row for row in EXPECTED_REPORT if row[0] == "alpha")


def at(day: int, hour: int) -> datetime:
    return datetime(2026, 3, day, hour, 20, tzinfo=UTC)


def alpha_tokens_and_calls(tmp_path) -> tuple[int, int, int]:
    report = pq.read_table(tmp_path / "reports" / f"daily/usage_date={DAY}/product_usage.parquet").to_pylist()
    alpha = [r for r in report if r["product_id"] == "alpha"]
    assert len(alpha) == 1
    return alpha[0]["prompt_tokens"], alpha[0]["completion_tokens"], alpha[0]["calls"]


def add_late_rows(export, name: str, gateway_rows: list[dict], llm_rows: list[dict]) -> None:
    """A new export file, as Log Analytics delivers rows ingested after the earlier export; the exporter
    withdraws its `_EMPTY_` marker of each hour that now has rows (a marker beside rows is an error)."""
    for folder, rows in (("ApiManagementGatewayLogs", gateway_rows), ("ApiManagementGatewayLlmLog", llm_rows)):
        (export / folder / name).write_text("".join(json.dumps(row) + "\n" for row in rows))
        for row in rows:
            (export / folder / f"_EMPTY_{row['TimeGenerated'][:13]}").unlink(missing_ok=True)


def files(root) -> dict:
    return {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(root.rglob("*")) if p.is_file()}


def test_a_late_row_is_billed_by_the_next_tick_exactly_once_and_a_quiet_tick_touches_nothing(tmp_path, instance):
    export = write_export(tmp_path / "export")
    resources = local_resources(tmp_path, FolderSourceResource(source_folder=str(export)))
    daemon = Daemon(instance, resources, catchup_hours=22)
    daemon.tick(at(10, 23))
    tick = daemon.tick(at(11, 0))  # the day is complete and published
    assert [r.success for r in tick.daily] == [True]
    assert alpha_tokens_and_calls(tmp_path) == ALPHA[5:8]

    # Ingested after 00:20: a new request at 20:10 and a second delivery of the 23:59 request (c-11).
    add_late_rows(
        export,
        "late.jsonl",
        [gateway("c-20", "20:10:00", "alpha"), gateway("c-11", "23:59:59.900", "alpha")],
        [llm("c-20", "20:10:01", 1000, 100), llm("c-11", "2026-03-11T00:00:03Z", 1, 1)],
    )
    tick = daemon.tick(at(11, 1))  # re-pulls 18:00..00:00 within the 6 h lookback

    assert tick.hourly.success and partitions_of(tick.daily) == [DAY]
    assert partitions_of(tick.monthly) == ["2026-03-01"]
    assert alpha_tokens_and_calls(tmp_path) == (ALPHA[5] + 1000, ALPHA[6] + 100, ALPHA[7] + 1)

    reports, lake = files(tmp_path / "reports"), files(tmp_path / "lake")
    tick = daemon.tick(at(11, 2))  # re-pulls 19:00..01:00: nothing new

    assert tick.hourly.success and tick.daily == [] and tick.monthly == []
    assert files(tmp_path / "reports") == reports  # same files, same bytes, same modification times
    after = files(tmp_path / "lake")
    assert {path: after[path] for path in lake} == lake  # only the new hour 01:00 added files


def test_a_row_later_than_the_lookback_is_billed_by_a_backfill(tmp_path, instance):
    export = write_export(tmp_path / "export")
    resources = local_resources(tmp_path, FolderSourceResource(source_folder=str(export)))
    daemon = Daemon(instance, resources, catchup_hours=6)
    backfill(date.fromisoformat(DAY), date.fromisoformat(DAY), pipeline(resources), instance)

    # 10:30 was last re-pulled at 17:20; this row arrives after midnight.
    add_late_rows(export, "very-late.jsonl", [gateway("c-30", "10:30:00", "alpha")], [llm("c-30", "10:30:01", 50, 5)])
    assert daemon.tick(at(11, 1)).hourly.success
    assert alpha_tokens_and_calls(tmp_path) == ALPHA[5:8]  # not billed by the schedule

    backfill(date.fromisoformat(DAY), date.fromisoformat(DAY), pipeline(resources), instance)
    assert alpha_tokens_and_calls(tmp_path) == (ALPHA[5] + 50, ALPHA[6] + 5, ALPHA[7] + 1)
    daemon.tick(at(11, 2))
    assert alpha_tokens_and_calls(tmp_path) == (ALPHA[5] + 50, ALPHA[6] + 5, ALPHA[7] + 1)  # still once
