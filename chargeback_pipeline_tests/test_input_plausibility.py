"""Implausible input is quarantined with its own reason, so the rest of the day is attributed and published.

- A token count above MAX_TOKENS_PER_RECORD on one LLM record (2^63-1 overflowed the day's 64-bit sums
  and failed the whole day, naming no row) is quarantined as `token count is above 10,000,000 per record`.
- A control character in an identifier that reaches the reports (ProductId, ApimSubscriptionId, BackendId,
  DeploymentName, ModelName) quarantines the row as `control character in <column>`; tab, line feed and
  carriage return are kept (RFC 4180 quoting and formula escaping handle them).
- Sums of plausible records never overflow: a day at the bound sums exactly.
"""

import json
from datetime import UTC, date, datetime, timedelta

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from chargeback_pipeline.cli.backfill import backfill
from chargeback_pipeline.sources.folder.resource import FolderSourceResource
from chargeback_pipeline.storage import sql
from chargeback_pipeline.storage.keys import hour_key
from chargeback_pipeline.storage.schemas import GATEWAY_CALLER_LOG_SCHEMA, LLM_LOG_SCHEMA
from chargeback_pipeline_tests.conftest import local_resources, pipeline
from chargeback_pipeline_tests.folder_data import (
    DAY,
    EXPECTED_REPORT,
    GATEWAY_ROWS,
    LLM_ROWS,
    PTU,
    gateway,
    llm,
    write_export,
)

# The bound stated in dbt_like_sql/staging/stg_apim__llm_checked.sql (and its yml): one model call cannot
# exceed the largest context window plus output (about 1.05M tokens today); 10M leaves ten times that.
MAX_TOKENS_PER_RECORD = 10_000_000
TOO_MANY_TOKENS = "token count is above 10,000,000 per record"
INT64_MAX = 2**63 - 1
THE_DAY = date.fromisoformat(DAY)
HOUR = datetime(2026, 3, 10, 9, tzinfo=UTC)
LLM_CHECKED, GATEWAY_CHECKED = "staging/stg_apim__llm_checked", "staging/stg_apim__gateway_checked"


def llm_record(cid: str, prompt: int | None, completion: int | None, total: int | None = None, **more) -> dict:
    return {
        "TimeGenerated": HOUR + timedelta(minutes=5),
        "CorrelationId": cid,
        "RequestId": f"req-{cid}",
        "DeploymentName": "gpt-4.1",
        "ModelName": "gpt-4.1",
        "OperationName": "Chat_Completions_Create",
        "ApiVersion": "2025-01-01",
        "Region": "East US",
        "PromptTokens": prompt,
        "CompletionTokens": completion,
        "TotalTokens": total if total is not None else (prompt or 0) + (completion or 0),
        "SequenceNumber": 0,
        "IsStreamCompletion": False,
        **more,
    }


def gateway_record(cid: str, **more) -> dict:
    return {
        "TimeGenerated": HOUR + timedelta(minutes=5),
        "CorrelationId": cid,
        "IsRequestSuccess": True,
        "ProductId": "alpha",
        "ApimSubscriptionId": "sub-1",
        "UserId": "user-1",
        "ApiId": "azure-openai",
        "OperationId": "chat-completions",
        "BackendId": PTU,
        "Region": "East US",
        "Cache": "none",
        "ResponseCode": 200,
        "BackendResponseCode": 200,
        "TotalTime": 900,
        "BackendTime": 850,
        **more,
    }


def reasons_of(model: str, relation: str, rows: list[dict], schema: pa.Schema) -> dict[str, str | None]:
    """The staging model's quarantine reason per CorrelationId."""
    con = sql.connect()
    try:
        # Tagged with its hour (sql.PARTITION_HOUR), as the attribution reads raw rows.
        sql.build_models(con, [], {relation: sql.by_partition_hour({HOUR: pa.Table.from_pylist(rows, schema)})})
        params = {"window_start": HOUR, "window_end": HOUR + timedelta(hours=1), "known_deployments": []}
        table = sql.select_model(con, model, params)
    finally:
        con.close()
    return dict(zip(table["CorrelationId"].to_pylist(), table["quarantine_reason"].to_pylist(), strict=True))


def staging_docs() -> dict[str, dict]:
    document = yaml.safe_load((sql.SQL_DIR / "staging" / "_apim__models.yml").read_text(encoding="utf-8"))
    return {entry["name"]: entry for entry in document["models"]}


def accepted_reasons(model: str) -> set[str]:
    [column] = [c for c in staging_docs()[model]["columns"] if c["name"] == "quarantine_reason"]
    [test] = [t for t in column["data_tests"] if isinstance(t, dict) and "accepted_values" in t]
    return set(test["accepted_values"]["values"])


def test_the_bound_and_the_reasons_are_the_ones_the_sql_and_yml_state():
    llm_sql = sql.model_sql(LLM_CHECKED)
    assert llm_sql.count(f"> {MAX_TOKENS_PER_RECORD}") == 3 and f"'{TOO_MANY_TOKENS}'" in llm_sql
    assert "MAX_TOKENS_PER_RECORD is 10,000,000" in staging_docs()["stg_apim__llm_checked"]["description"]
    assert {TOO_MANY_TOKENS, "control character in DeploymentName", "control character in ModelName"} <= (
        accepted_reasons("stg_apim__llm_checked")
    )
    assert {f"control character in {c}" for c in ("ProductId", "ApimSubscriptionId", "BackendId")} <= (
        accepted_reasons("stg_apim__gateway_checked")
    )


def test_token_counts_above_the_bound_are_quarantined_at_the_bound_trusted():
    bound = MAX_TOKENS_PER_RECORD
    rows = [
        llm_record("at-bound", bound - 1, 1),  # total exactly at the bound
        llm_record("prompt-over", bound + 1, 0),
        llm_record("completion-over", 0, bound + 1),
        llm_record("total-over", 10, 10, total=bound + 1),
        llm_record("int64-max", INT64_MAX, 0, total=INT64_MAX),
        llm_record("later-chunk-over", 0, 0, total=INT64_MAX, SequenceNumber=1),
        llm_record("negative-and-huge", -1, INT64_MAX, total=INT64_MAX),  # the first reason wins
    ]

    reasons = reasons_of(LLM_CHECKED, "raw_llm_logs", rows, LLM_LOG_SCHEMA)

    assert reasons == {
        "at-bound": None,
        "prompt-over": TOO_MANY_TOKENS,
        "completion-over": TOO_MANY_TOKENS,
        "total-over": TOO_MANY_TOKENS,
        "int64-max": TOO_MANY_TOKENS,
        "later-chunk-over": TOO_MANY_TOKENS,
        "negative-and-huge": "token count is negative",
    }


@pytest.mark.parametrize(
    ("column", "value", "reason"),
    [
        ("ProductId", "al\x00pha", "control character in ProductId"),
        ("ProductId", "bell\x07", "control character in ProductId"),
        ("ProductId", "\x1b[31mred", "control character in ProductId"),
        ("ProductId", "del\x7f", "control character in ProductId"),
        ("ProductId", "c1\x85next-line", "control character in ProductId"),
        ("ApimSubscriptionId", "sub\x00", "control character in ApimSubscriptionId"),
        ("BackendId", "aoai\x0bptu", "control character in BackendId"),
        # kept: RFC 4180 quotes them, and formula escaping covers a leading tab or carriage return
        ("ProductId", "tab\tinside", None),
        ("ProductId", "line\nbreak", None),
        ("ProductId", "\rleading-cr", None),
        ("ProductId", "ünïcødé 製品 🚀", None),
        ("ProductId", '=HYPERLINK("http://x")', None),
    ],
)
def test_control_characters_in_gateway_identifiers_quarantine_the_row(column, value, reason):
    reasons = reasons_of(
        GATEWAY_CHECKED, "raw_gateway_logs", [gateway_record("c-1", **{column: value})], GATEWAY_CALLER_LOG_SCHEMA
    )

    assert reasons == {"c-1": reason}


@pytest.mark.parametrize(
    ("column", "value", "reason"),
    [
        ("ModelName", "gpt\x00-4.1", "control character in ModelName"),
        ("DeploymentName", "gpt-41\x1f-ptu", "control character in DeploymentName"),
        ("ModelName", "gpt-4.1", None),
    ],
)
def test_control_characters_in_llm_identifiers_quarantine_the_row(column, value, reason):
    reasons = reasons_of(LLM_CHECKED, "raw_llm_logs", [llm_record("c-1", 10, 1, **{column: value})], LLM_LOG_SCHEMA)

    assert reasons == {"c-1": reason}


def test_a_day_at_the_bound_sums_exactly_in_64_bits():
    """2,000,000 requests of 10,000,000 tokens each (2e13 tokens, far above 2^32): the daily rollup is exact.
    With every record under the bound a 64-bit sum needs more than 900 billion records to overflow."""
    requests = 2_000_000
    con = sql.connect()
    try:
        con.execute(
            """
            create temp table attributed_requests as
            select date '2026-03-10' as usage_date, 'bulk' as product_id, 'sub-1' as subscription_id,
                'gpt-4.1' as model_name, 'gpt-4.1' as deployment_name, 'aoai-ptu-eastus' as backend_id,
                6000000::bigint as prompt_tokens, 4000000::bigint as completion_tokens,
                10000000::bigint as total_tokens, true as is_billable, true as is_success,
                timestamptz '2026-03-10 00:00:00+00' + to_microseconds(i) as request_time
            from range(?) as t(i)
            """,
            [requests],
        )
        usage = sql.select_model(con, "marts/fct_daily_product_usage", {"usage_date": THE_DAY}).to_pylist()
    finally:
        con.close()

    [row] = usage
    assert row["prompt_tokens"] == 6_000_000 * requests
    assert row["completion_tokens"] == 4_000_000 * requests
    assert row["total_tokens"] == MAX_TOKENS_PER_RECORD * requests > 2**32
    assert row["calls"] == requests


@pytest.fixture
def instance_resources(tmp_path):
    def make(gateway_rows, llm_rows):
        export = write_export(tmp_path / "export", gateway_rows, llm_rows)
        return local_resources(tmp_path, FolderSourceResource(source_folder=str(export)))

    return make


def report(tmp_path, name="product_usage") -> pa.Table:
    return pq.read_table(tmp_path / "reports" / f"daily/usage_date={DAY}/{name}.parquet")


def report_rows(table: pa.Table) -> list[tuple]:
    columns = ["product_id", "subscription_id", "model_name", "deployment_name", "backend_id"]
    counts = ["prompt_tokens", "completion_tokens", "calls", "failed_calls"]
    return [tuple(row[c] for c in columns + counts) for row in table.to_pylist()]


def test_one_absurd_token_count_is_quarantined_and_the_day_is_published(tmp_path, instance, instance_resources):
    absurd = {**llm("c-50", "14:00:01", 0, 0), "PromptTokens": INT64_MAX, "TotalTokens": INT64_MAX}
    resources = instance_resources([*GATEWAY_ROWS, gateway("c-50", "14:00:00", "alpha")], [*LLM_ROWS, absurd])

    [chunk] = backfill(THE_DAY, THE_DAY, pipeline(resources), instance)

    quarantined = pq.read_table(
        tmp_path / "lake" / hour_key("quarantined_records", datetime(2026, 3, 10, 14, tzinfo=UTC))
    ).to_pylist()
    assert [(q["source_table"], q["reason"]) for q in quarantined] == [("ApiManagementGatewayLlmLog", TOO_MANY_TOKENS)]
    record = json.loads(quarantined[0]["record"])
    assert record["CorrelationId"] == "c-50" and record["PromptTokens"] == INT64_MAX
    # the report is the export's own: the request whose LLM record is quarantined has no tokens to bill
    assert report_rows(report(tmp_path)) == sorted(EXPECTED_REPORT)
    assert max(report(tmp_path)["total_tokens"].to_pylist()) < MAX_TOKENS_PER_RECORD
    assert (tmp_path / "reports" / f"daily/usage_date={DAY}/chargeback.csv").exists()
    check = chunk.check_evaluations()["attributed_requests:quarantine_rate_within_limit"]
    assert check.metadata["quarantined_rows"].value == 1
    assert check.metadata["by_reason"].value == {f"ApiManagementGatewayLlmLog: {TOO_MANY_TOKENS}": 1}
    assert not check.passed  # 1 of 12 rows is above the 1% limit: the check says so, the day is still published


def test_control_character_in_a_product_is_quarantined_and_never_reaches_the_csv(
    tmp_path, instance, instance_resources
):
    gateway_rows = [*GATEWAY_ROWS, gateway("c-51", "15:00:00", "evil\x00product")]
    resources = instance_resources(gateway_rows, [*LLM_ROWS, llm("c-51", "15:00:01", 70, 7)])

    [chunk] = backfill(THE_DAY, THE_DAY, pipeline(resources), instance)

    quarantined = pq.read_table(
        tmp_path / "lake" / hour_key("quarantined_records", datetime(2026, 3, 10, 15, tzinfo=UTC))
    ).to_pylist()
    assert [(q["source_table"], q["reason"]) for q in quarantined] == [
        ("ApiManagementGatewayLogs", "control character in ProductId")
    ]
    assert json.loads(quarantined[0]["record"])["ProductId"] == "evil\x00product"
    folder = tmp_path / "reports" / f"daily/usage_date={DAY}"
    for name in ("product_usage", "chargeback", "focus"):
        assert b"\x00" not in (folder / f"{name}.csv").read_bytes(), name
        assert "evil" not in str(pq.read_table(folder / f"{name}.parquet").to_pylist()), name
    assert report_rows(report(tmp_path)) == sorted(EXPECTED_REPORT)
    by_reason = chunk.check_evaluations()["attributed_requests:quarantine_rate_within_limit"].metadata["by_reason"]
    assert by_reason.value == {"ApiManagementGatewayLogs: control character in ProductId": 1}


def test_huge_but_plausible_day_is_exact_end_to_end(tmp_path, instance, instance_resources):
    """300 requests at the bound: 3e9 tokens for one product, above 2^31 and 2^32 in every sum."""
    requests = 300
    bulk_gateway = [gateway(f"b-{i:03d}", f"16:{i // 60:02d}:{i % 60:02d}", "bulk") for i in range(requests)]
    bulk_llm = [llm(f"b-{i:03d}", f"16:{i // 60:02d}:{i % 60:02d}.5", 6_000_000, 4_000_000) for i in range(requests)]
    resources = instance_resources([*GATEWAY_ROWS, *bulk_gateway], [*LLM_ROWS, *bulk_llm])

    [chunk] = backfill(THE_DAY, THE_DAY, pipeline(resources), instance)

    [bulk] = [row for row in report(tmp_path).to_pylist() if row["product_id"] == "bulk"]
    assert (bulk["prompt_tokens"], bulk["completion_tokens"], bulk["total_tokens"], bulk["calls"]) == (
        6_000_000 * requests,
        4_000_000 * requests,
        10_000_000 * requests,
        requests,
    )
    csv_text = (tmp_path / "reports" / f"daily/usage_date={DAY}/product_usage.csv").read_text()
    assert f",{10_000_000 * requests}," in csv_text
    chargeback = [row for row in report(tmp_path, "chargeback").to_pylist() if row["product_id"] == "bulk"]
    assert chargeback and sum(row["prompt_tokens"] for row in chargeback) == 6_000_000 * requests
    assert (
        chunk.check_evaluations()["attributed_requests:quarantine_rate_within_limit"].metadata["quarantined_rows"].value
        == 0
    )
