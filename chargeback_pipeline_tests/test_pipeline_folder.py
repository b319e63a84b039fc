"""The whole asset graph on the folder source: every data hazard, re-runs and late rows."""

import json
from datetime import date

import pyarrow.parquet as pq
import pytest

from chargeback_pipeline.cli.backfill import BackfillFailed, backfill
from chargeback_pipeline.sources.folder.resource import FolderSourceResource
from chargeback_pipeline.storage.keys import hour_key
from chargeback_pipeline_tests.conftest import local_resources, pipeline
from chargeback_pipeline_tests.folder_data import DAY, EXPECTED_REPORT, gateway, llm, write_export

REPORT_KEY = f"daily/usage_date={DAY}/product_usage"
THE_DAY = date.fromisoformat(DAY)


@pytest.fixture
def export(tmp_path):
    return write_export(tmp_path / "export")


@pytest.fixture
def resources(tmp_path, export):
    return local_resources(tmp_path, FolderSourceResource(source_folder=str(export)))


def report_rows(tmp_path) -> list[tuple]:
    table = pq.read_table(tmp_path / "reports" / f"{REPORT_KEY}.parquet")
    columns = ["product_id", "subscription_id", "model_name", "deployment_name", "backend_id"]
    counts = ["prompt_tokens", "completion_tokens", "calls", "failed_calls"]
    return [tuple(row[c] for c in columns + counts) for row in table.to_pylist()]


def test_every_request_counted_once_and_exclusions_excluded(tmp_path, resources, instance):
    backfill(THE_DAY, THE_DAY, pipeline(resources), instance)

    assert report_rows(tmp_path) == sorted(EXPECTED_REPORT)
    report = pq.read_table(tmp_path / "reports" / f"{REPORT_KEY}.parquet")
    # total = prompt + completion for every row, and 64-bit all the way
    assert report["total_tokens"].to_pylist() == [
        p + c for p, c in zip(report["prompt_tokens"].to_pylist(), report["completion_tokens"].to_pylist(), strict=True)
    ]
    assert str(report.schema.field("total_tokens").type) == "int64"


def test_raw_landing_keeps_only_needed_columns(tmp_path, resources, instance):
    backfill(THE_DAY, THE_DAY, pipeline(resources), instance)

    landed = pq.read_table(tmp_path / "lake" / hour_key("raw/gateway_logs", day_hour(8)))
    assert "CallerIpAddress" not in landed.column_names
    assert not [c for c in landed.column_names if "Body" in c or "Header" in c]
    llm_landed = pq.read_table(tmp_path / "lake" / hour_key("raw/llm_logs", day_hour(8)))
    assert "RequestMessages" not in llm_landed.column_names


def day_hour(hour: int):
    from datetime import UTC, datetime

    return datetime(THE_DAY.year, THE_DAY.month, THE_DAY.day, hour, tzinfo=UTC)


def test_rerun_is_byte_identical(tmp_path, resources, instance):
    backfill(THE_DAY, THE_DAY, pipeline(resources), instance)
    first = {ext: (tmp_path / "reports" / f"{REPORT_KEY}.{ext}").read_bytes() for ext in ("csv", "parquet")}

    backfill(THE_DAY, THE_DAY, pipeline(resources), instance)

    again = {ext: (tmp_path / "reports" / f"{REPORT_KEY}.{ext}").read_bytes() for ext in ("csv", "parquet")}
    assert again == first


def test_late_rows_give_the_new_truth_never_a_double_count(tmp_path, export, resources, instance):
    backfill(THE_DAY, THE_DAY, pipeline(resources), instance)
    late_gateway = [gateway("c-20", "14:10:00", "alpha"), gateway("c-01", "08:15:00.1234567", "alpha")]
    late_llm = [llm("c-20", "14:10:01", 1000, 100), llm("c-01", "08:15:01", 100, 20)]  # c-01 re-delivered
    (export / "ApiManagementGatewayLogs" / "late.jsonl").write_text("".join(json.dumps(r) + "\n" for r in late_gateway))
    (export / "ApiManagementGatewayLlmLog" / "late.jsonl").write_text("".join(json.dumps(r) + "\n" for r in late_llm))
    for table in ("ApiManagementGatewayLogs", "ApiManagementGatewayLlmLog"):  # hour 14 is no longer empty
        (export / table / f"_EMPTY_{THE_DAY}T14").unlink()

    backfill(THE_DAY, THE_DAY, pipeline(resources), instance)

    alpha = next(row for row in report_rows(tmp_path) if row[0] == "alpha")
    expected_alpha = next(row for row in EXPECTED_REPORT if row[0] == "alpha")
    assert alpha[5:8] == (expected_alpha[5] + 1000, expected_alpha[6] + 100, expected_alpha[7] + 1)


def test_untypeable_rows_are_landed_as_rejected_with_a_reason(tmp_path, export, resources, instance):
    bad = [
        gateway("c-30", "15:00:00", "alpha", ResponseCode="two hundred"),
        {**gateway("c-31", "15:00:01", "alpha"), "TimeGenerated": "yesterday-ish"},
    ]
    (export / "ApiManagementGatewayLogs" / "bad.jsonl").write_text(
        json.dumps(gateway("c-32", "15:30:00", "alpha")) + "\n" + "".join(json.dumps(r) + "\n" for r in bad)
    )
    (export / "ApiManagementGatewayLogs" / f"_EMPTY_{THE_DAY}T15").unlink()  # hour 15 has rows now

    backfill(THE_DAY, THE_DAY, pipeline(resources), instance)

    rejected = pq.read_table(tmp_path / "lake" / hour_key("raw/gateway_logs", day_hour(15), "rejected"))
    reasons = sorted(rejected["reason"].to_pylist())
    assert reasons == ["ResponseCode is not a valid int32", "TimeGenerated is not a valid timestamp[us, tz=UTC]"]
    assert all(origin.endswith("bad.jsonl") for origin in rejected["origin"].to_pylist())
    assert "two hundred" in rejected["record"][0].as_py() + rejected["record"][1].as_py()


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b"", "is empty"),
        (b'{"TimeGenerated": "2026-03-10T01:00:00Z"}\n{"TimeGen', "not valid JSON"),
        (b"\x00garbage", "not valid JSON"),
    ],
)
def test_broken_source_files_fail_the_partition_naming_the_file(
    tmp_path, export, resources, instance, content, problem
):
    (export / "ApiManagementGatewayLlmLog" / "broken.jsonl").write_bytes(content)

    with pytest.raises(BackfillFailed, match=rf"broken\.jsonl.*{problem}|{problem}.*broken\.jsonl"):
        backfill(THE_DAY, THE_DAY, pipeline(resources), instance)
