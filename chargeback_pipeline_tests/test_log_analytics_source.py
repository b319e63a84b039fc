"""LogAnalyticsSource against the local Log Analytics stand-in, through the real LogsQueryClient over HTTP."""

import logging
import re
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pytest

from chargeback_pipeline.sources.base import TimeWindow
from chargeback_pipeline.sources.log_analytics import (
    KQL_DIR,
    IncompleteWindowError,
    LogAnalyticsQueryError,
    LogAnalyticsSource,
)
from chargeback_pipeline.sources.simulated import SimulatedSource, SimulationProfile
from chargeback_pipeline.standins.log_analytics import LogAnalyticsStandIn
from chargeback_pipeline.storage.schemas import GATEWAY_LOG_SCHEMA, LLM_LOG_SCHEMA, SOURCE_REJECT_SCHEMA

GATEWAY = "ApiManagementGatewayLogs"
LLM = "ApiManagementGatewayLlmLog"
HOUR = TimeWindow(datetime(2026, 1, 1, 15, tzinfo=UTC), datetime(2026, 1, 1, 16, tzinfo=UTC))
LOADED = TimeWindow(HOUR.start - timedelta(hours=1), HOUR.end + timedelta(hours=1))
PAYLOAD_COLUMNS = (
    *("RequestBody", "ResponseBody", "TraceRecords", "CallerIpAddress", "RequestMessages", "ResponseMessages"),
    *("RequestHeaders", "ResponseHeaders", "BackendRequestHeaders", "BackendResponseHeaders"),
)
LOGGER_NAME = "chargeback_pipeline.sources.log_analytics"


def with_payloads(table: pa.Table) -> pa.Table:
    """The table as Log Analytics holds it: with payload and header columns the source must never pull."""
    for name in PAYLOAD_COLUMNS:
        table = table.append_column(name, pa.array(["secret"] * table.num_rows))
    return table


def sorted_rows(table: pa.Table) -> pa.Table:
    return table.sort_by([(name, "ascending") for name in table.column_names])


@pytest.fixture(scope="module")
def simulated() -> SimulatedSource:
    return SimulatedSource(SimulationProfile(requests_per_hour=12_000))


@pytest.fixture(scope="module")
def server(simulated):
    tables = {GATEWAY: simulated.gateway_logs(LOADED).rows, LLM: simulated.llm_logs(LOADED).rows}
    with LogAnalyticsStandIn({name: with_payloads(table) for name, table in tables.items()}) as standin:
        yield standin


@pytest.fixture
def standin(server):
    server.heal()
    server.wait_until_idle()  # a query abandoned by an earlier test's client must not count here
    server.reset_counters()
    yield server
    server.heal()


def make_source(standin: LogAnalyticsStandIn, **overrides) -> LogAnalyticsSource:
    settings = {"retry_total": 4, "retry_backoff_factor": 0.01, "retry_backoff_max": 0.05, "query_timeout": 30}
    workspace = f"ws-{uuid.uuid4().hex[:12]}"  # own concurrency slots per test
    return LogAnalyticsSource(workspace, logs_endpoint=standin.endpoint, **(settings | overrides))


def test_an_hour_through_the_real_client_equals_the_loaded_rows(standin, simulated):
    source = make_source(standin)

    gateway = source.gateway_logs(HOUR)
    llm = source.llm_logs(HOUR)

    assert gateway.rows.schema == GATEWAY_LOG_SCHEMA and llm.rows.schema == LLM_LOG_SCHEMA
    assert gateway.rows.num_rows > 10_000
    assert sorted_rows(gateway.rows).equals(sorted_rows(simulated.gateway_logs(HOUR).rows))
    assert sorted_rows(llm.rows).equals(sorted_rows(simulated.llm_logs(HOUR).rows))
    assert gateway.rejected.num_rows == llm.rejected.num_rows == 0
    # Loopback is never sent credentials; every query is bounded to the window, also by its timespan.
    assert {query.authorization for query in standin.received} == {None}
    assert {query.timespan for query in standin.received} == {"2026-01-01T15:00:00.000Z/2026-01-01T16:00:00.000Z"}


def test_a_truncated_hour_is_split_until_every_row_lands_once(standin, simulated):
    standin.truncate_at = 1000
    source = make_source(standin, rows_per_query=1_000_000)  # no planning: rely on partial-result splitting

    gateway = source.gateway_logs(HOUR)

    expected = simulated.gateway_logs(HOUR).rows
    assert expected.num_rows > 10_000
    assert sorted_rows(gateway.rows).equals(sorted_rows(expected))  # the same multiset: each row once
    assert standin.queries_received > expected.num_rows / 1000


def test_throttling_and_unavailability_are_retried_and_logged(standin, simulated, caplog):
    standin.fail_next(1, status=429, retry_after=0.05)
    standin.fail_next(1, status=429)
    standin.fail_next(2, status=503)
    source = make_source(standin)

    with caplog.at_level(logging.WARNING, logger=LOGGER_NAME):
        llm = source.llm_logs(HOUR)

    assert sorted_rows(llm.rows).equals(sorted_rows(simulated.llm_logs(HOUR).rows))
    warnings = [record.getMessage() for record in caplog.records if record.name == LOGGER_NAME]
    assert any("HTTP 429 (Retry-After: 0.05s)" in line for line in warnings)
    assert any("HTTP 429 (no Retry-After)" in line for line in warnings)
    assert sum("HTTP 503" in line for line in warnings) == 2
    assert sum(line.startswith("Retrying") and f"table {LLM}" in line for line in warnings) == 4


def test_a_timed_out_query_is_retried_and_logged(standin, simulated, caplog):
    standin.slow_next(1, delay_seconds=4.0)  # the first query (the count) outlasts the client's patience
    # patience long enough for a normal answer on a loaded machine, short of the slow one
    source = make_source(standin, read_timeout=1.5)

    with caplog.at_level(logging.WARNING, logger=LOGGER_NAME):
        gateway = source.gateway_logs(HOUR)

    assert gateway.rows.num_rows == simulated.gateway_logs(HOUR).rows.num_rows
    assert any(record.getMessage().startswith("Retrying") for record in caplog.records)


def test_endless_503_names_workspace_table_and_window_and_a_later_call_succeeds(standin, simulated):
    standin.fail_always(503)
    source = make_source(standin, retry_total=2)

    with pytest.raises(LogAnalyticsQueryError) as raised:
        source.gateway_logs(HOUR)

    message = str(raised.value)
    assert source.workspace_id in message and f"table {GATEWAY}" in message and str(HOUR) in message
    assert standin.queries_received == 3  # the first attempt and two retries
    standin.heal()
    assert source.gateway_logs(HOUR).rows.num_rows == simulated.gateway_logs(HOUR).rows.num_rows


def test_no_more_than_five_queries_are_in_flight_per_workspace(standin):
    standin.delay_seconds = 0.05
    workspace = f"ws-{uuid.uuid4().hex[:12]}"
    sources = [LogAnalyticsSource(workspace, logs_endpoint=standin.endpoint) for _ in range(2)]
    five_minutes = timedelta(minutes=5)
    windows = [TimeWindow(HOUR.start + i * five_minutes, HOUR.start + (i + 1) * five_minutes) for i in range(12)]

    with ThreadPoolExecutor(max_workers=len(windows)) as pool:
        counts = list(pool.map(lambda i: sources[i % 2].gateway_logs(windows[i]).rows.num_rows, range(len(windows))))

    assert 2 <= standin.max_in_flight <= 5
    assert sum(counts) == sources[0].gateway_logs(HOUR).rows.num_rows


def test_rows_arriving_between_the_count_and_the_rows_raise(standin, simulated):
    late = with_payloads(simulated.gateway_logs(HOUR).rows.slice(0, 3))
    standin.ingest_after_next_query(GATEWAY, late)  # the next query is the window's count()
    source = make_source(standin)
    try:
        with pytest.raises(IncompleteWindowError, match=r"count\(\) says \d+ rows but \d+ landed"):
            source.gateway_logs(HOUR)
    finally:
        standin.load_table(GATEWAY, with_payloads(simulated.gateway_logs(LOADED).rows))


def test_values_that_cannot_be_typed_are_rejected_with_a_reason_not_dropped(standin, simulated):
    good = simulated.llm_logs(HOUR).rows.slice(0, 2)
    as_text = good.set_column(8, "PromptTokens", pa.array(["12", "12.5"]))  # the service sent a non-integer
    as_text = as_text.set_column(12, "IsStreamCompletion", pa.array(["true", "maybe"]))
    standin.load_table("BrokenLlmLog", with_payloads(as_text))
    source = make_source(standin, llm_table="BrokenLlmLog")

    fetched = source.llm_logs(HOUR)

    assert fetched.rows.num_rows == 1 and fetched.rows["PromptTokens"].to_pylist() == [12]
    assert fetched.rejected.schema == SOURCE_REJECT_SCHEMA
    [rejected] = fetched.rejected.to_pylist()
    assert rejected["source_table"] == "BrokenLlmLog"
    assert "PromptTokens is not a valid int64" in rejected["reason"]
    assert "IsStreamCompletion is not a valid bool" in rejected["reason"]
    assert '"PromptTokens":"12.5"' in rejected["record"] and source.workspace_id in rejected["origin"]
    assert rejected["placed_at"] == good["TimeGenerated"][1].as_py()  # filed under its own time


def test_a_clean_answer_is_landed_without_copying_its_rows_and_a_mixed_one_is_split(simulated):
    from chargeback_pipeline.sources.log_analytics.arrow import split_checked

    rows = simulated.llm_logs(HOUR).rows.slice(0, 3)
    checked = rows.append_column("reason", pa.array(["", "", ""])).append_column("record", pa.nulls(3, pa.string()))

    clean = split_checked(checked, LLM_LOG_SCHEMA, "llm", HOUR, "origin")
    assert clean.rows.equals(rows) and clean.rejected.num_rows == 0
    assert clean.rejected.schema == SOURCE_REJECT_SCHEMA
    # The same memory, not a copy: a clean 20 MB answer is handed on as it was read.
    assert (
        clean.rows["CorrelationId"].chunks[0].buffers()[2].address
        == rows["CorrelationId"].chunks[0].buffers()[2].address
    )

    mixed = checked.set_column(checked.schema.get_field_index("reason"), "reason", pa.array(["", "bad cell", ""]))
    split = split_checked(mixed, LLM_LOG_SCHEMA, "llm", HOUR, "origin")
    assert split.rows.equals(rows.take([0, 2]))
    assert split.rejected["reason"].to_pylist() == ["bad cell"]
    assert split.rejected["placed_at"].to_pylist() == [rows["TimeGenerated"][1].as_py()]


def test_a_stopped_standin_has_ended_its_thread_and_is_no_longer_held_by_it(simulated):
    # A serving thread that outlived stop() dropped the last reference to the stand-in (and its DuckDB
    # connection) whenever it ended, which at interpreter exit aborted the process.
    standin = LogAnalyticsStandIn({GATEWAY: simulated.gateway_logs(HOUR).rows.slice(0, 5)}).start()
    thread, server = standin._thread, standin._server
    assert make_source(standin).gateway_logs(HOUR).rows.num_rows == 5

    standin.stop()

    assert not thread.is_alive()
    assert getattr(server, "standin", None) is None
    standin.stop()  # stopping twice is harmless


def test_kql_files_project_exactly_the_schema_and_never_payloads_or_headers():
    for name, schema in (("gateway_logs.kql", GATEWAY_LOG_SCHEMA), ("llm_logs.kql", LLM_LOG_SCHEMA)):
        text = (KQL_DIR / name).read_text()
        for column in PAYLOAD_COLUMNS:
            assert column.lower() not in text.lower(), f"{name} names {column}"
        query = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("//"))
        assert not re.search(r"header|body|message|callerip|trace|\*", query, re.IGNORECASE)
        projected = re.search(r"\|\s*project\s+(.+)", query, re.DOTALL).group(1)
        assert [column.strip() for column in projected.split(",")] == schema.names


@pytest.mark.parametrize(
    "table",
    [
        "ApiManagementGatewayLogs | project RequestBody",
        "ApiManagementGatewayLogs\n| union ApiManagementGatewayLlmLog",
        "T; .drop table T",
        "datetime(2026-01-01)",
        "",
    ],
)
def test_a_hostile_table_name_is_refused(standin, table):
    with pytest.raises(ValueError, match="not a Log Analytics table name"):
        make_source(standin, gateway_table=table)


def test_only_loopback_endpoints_go_without_https():
    with pytest.raises(ValueError, match="https"):
        LogAnalyticsSource("ws-1", logs_endpoint="http://api.loganalytics.io/v1")
