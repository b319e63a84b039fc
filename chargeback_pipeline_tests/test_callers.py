"""Who called: only the named trace-record and header values leave the source (asserted on the query the
workspace stand-in received, and on what comes back), bounded and checked; the folder source likewise.
That nothing else is written anywhere over a whole day: test_callers_simulated.py."""

import json
import re
import zlib
from collections import Counter
from datetime import UTC, date, datetime, timedelta

import pyarrow as pa
import pytest

from chargeback_pipeline.core.attribution import attribute_hour
from chargeback_pipeline.sources.base import TimeWindow
from chargeback_pipeline.sources.callers import CallerIdentity
from chargeback_pipeline.sources.folder.source import FolderSource
from chargeback_pipeline.sources.log_analytics import KQL_DIR, LogAnalyticsSource
from chargeback_pipeline.sources.simulated import SimulatedSource, SimulationProfile
from chargeback_pipeline.standins.log_analytics import LogAnalyticsStandIn
from chargeback_pipeline.storage.keys import ATTRIBUTED, RAW_GATEWAY, RAW_LLM, hour_key
from chargeback_pipeline.storage.lake import Lake
from chargeback_pipeline.storage.object_store import LocalObjectStore
from chargeback_pipeline.storage.schemas import (
    GATEWAY_CALLER_LOG_SCHEMA,
    GATEWAY_LOG_SCHEMA,
    LLM_LOG_SCHEMA,
    SOURCE_REJECT_SCHEMA,
)
from chargeback_pipeline_tests.test_cli import chargeback, last_line

GATEWAY = "ApiManagementGatewayLogs"
DAY = date(2026, 11, 20)
START = datetime(DAY.year, DAY.month, DAY.day, tzinfo=UTC)
HOUR = TimeWindow(START + timedelta(hours=15), START + timedelta(hours=16))
RATE = 60
# Planted in trace records and headers the pipeline must never read: found anywhere it writes, it leaked.
SECRET = "TRACE-SECRET-7f3a"
KEYS = ("appid", "azp")
HEADER = "x-client-app"
CALLERS = ("app-entra-1", "app-entra-2", "team-batch")


def planted_caller(correlation_id: str) -> tuple[str | None, str, str | None]:
    """Per request: the caller the pipeline must find, its trace records and its logged request headers.
    One in five names no caller; some name it by `azp` only, some by the header only; every request also
    carries a trace record and metadata that are not a key, holding the secret."""
    kind = zlib.crc32(correlation_id.encode()) % 5
    caller = CALLERS[kind % 3]
    noise = {"message": f"token claims {SECRET}", "severity": "Information",
             "metadata": [{"name": "authorization", "value": f"Bearer {SECRET}"}]}  # fmt: skip
    headers = {"authorization": f"Bearer {SECRET}"}
    if kind == 0:  # appid wins over azp, whatever the order of the records
        records = [{"metadata": [{"name": "azp", "value": "not-this-one"}]}, noise,
                   {"metadata": [{"name": "appid", "value": caller}, {"name": "email", "value": SECRET}]}]  # fmt: skip
    elif kind == 1:
        records = [noise, {"message": SECRET, "metadata": [{"name": "azp", "value": caller}]}]
    elif kind == 2:  # only the header names it
        records, headers = [noise], headers | {HEADER: caller}
    elif kind == 3:  # an empty key value names nobody: the next key does
        records = [{"metadata": [{"name": "appid", "value": ""}, {"name": "azp", "value": caller}]}]
    else:
        return None, json.dumps([noise]), json.dumps(headers)
    return caller, json.dumps(records), json.dumps(headers)


def with_trace_records(gateway: pa.Table) -> pa.Table:
    """The gateway log as the workspace holds it with a `trace` policy: TraceRecords and RequestHeaders."""
    planted = [planted_caller(cid) for cid in gateway["CorrelationId"].to_pylist()]
    gateway = gateway.append_column("TraceRecords", pa.array([records for _, records, _ in planted]))
    return gateway.append_column("RequestHeaders", pa.array([headers for _, _, headers in planted]))


@pytest.fixture(scope="module")
def simulator() -> SimulatedSource:
    return SimulatedSource(SimulationProfile(requests_per_hour=RATE))


@pytest.fixture(scope="module")
def standin(simulator):
    loaded = TimeWindow(HOUR.start - timedelta(hours=1), HOUR.end + timedelta(hours=1))
    with LogAnalyticsStandIn({GATEWAY: with_trace_records(simulator.gateway_logs(loaded).rows)}) as logs:
        yield logs


def source(logs: LogAnalyticsStandIn, callers: CallerIdentity) -> LogAnalyticsSource:
    return LogAnalyticsSource(
        "ws-callers", logs_endpoint=logs.endpoint, retry_total=1, retry_backoff_factor=0.01, callers=callers
    )


def gateway_queries(logs: LogAnalyticsStandIn) -> list[str]:
    return [received.query for received in logs.received if GATEWAY in received.query]


def test_only_the_named_values_are_projected_in_the_query_sent(standin, simulator):
    logs = standin
    logs.reset_counters()

    fetched = source(logs, CallerIdentity(KEYS, HEADER)).gateway_logs(HOUR)

    assert fetched.rows.schema == GATEWAY_CALLER_LOG_SCHEMA
    expected = {
        cid: planted_caller(cid)[0] or "" for cid in simulator.gateway_logs(HOUR).rows["CorrelationId"].to_pylist()
    }
    assert (
        dict(zip(fetched.rows["CorrelationId"].to_pylist(), fetched.rows["CallerId"].to_pylist(), strict=True))
        == expected
    )
    assert SECRET not in json.dumps(fetched.rows.to_pylist(), default=str)
    queries = gateway_queries(logs)
    assert len(queries) == 2  # the count, then the rows
    for query in queries:
        # TraceRecords is only expanded, and of its metadata only the named keys are kept; of
        # RequestHeaders only the named header is read; every value cut at 257 characters.
        assert re.findall(r"\bTraceRecords\b", query) == ["TraceRecords"]
        assert "| mv-expand TraceRecord = TraceRecords\n" in query
        assert 'array_index_of(dynamic(["appid", "azp"]), tostring(TraceMetadata.name))' in query
        assert "| where CallerRank >= 0\n" in query
        assert re.findall(r"RequestHeaders[^\n]*", query) == ['RequestHeaders["x-client-app"]), 0, 257))']
        assert "substring(tostring(TraceMetadata.value), 0, 257)" in query
    # What is answered: the gateway columns and CallerId, nothing of the records themselves.
    projected = re.search(r"\| project (TimeGenerated[^|]*)$", queries[1]).group(1)
    assert [name.strip() for name in projected.split(",")] == GATEWAY_CALLER_LOG_SCHEMA.names


def test_without_keys_the_query_is_todays_and_reads_no_trace_record(standin):
    logs = standin
    logs.reset_counters()

    fetched = source(logs, CallerIdentity()).gateway_logs(HOUR)

    assert fetched.rows.schema == GATEWAY_LOG_SCHEMA
    body = "\n".join(
        line for line in (KQL_DIR / "gateway_logs.kql").read_text().splitlines() if not line.startswith("//")
    ).strip()
    assert gateway_queries(logs)[1].startswith(body.split("\n", 1)[0].replace("$table", GATEWAY))
    assert all("TraceRecords" not in q and "RequestHeaders" not in q for q in gateway_queries(logs))


def test_the_folder_source_reads_only_the_named_values(tmp_path):
    folder = tmp_path / "export" / GATEWAY
    folder.mkdir(parents=True)
    rows = []
    for index in range(40):
        correlation_id = f"c-{index:02d}"
        _, records, headers = planted_caller(correlation_id)
        row = {
            "TimeGenerated": f"2026-03-10T09:{index:02d}:00Z",
            "CorrelationId": correlation_id,
            "IsRequestSuccess": True,
            "ProductId": "",
            # Exports hold a dynamic column as JSON or as a JSON document in a string: both are read.
            "TraceRecords": json.loads(records) if index % 2 else records,
            "RequestHeaders": json.loads(headers),
        }
        rows.append(row)
    (folder / "part-0.jsonl").write_text("\n".join(json.dumps(row) for row in rows))
    window = TimeWindow(datetime(2026, 3, 10, 9, tzinfo=UTC), datetime(2026, 3, 10, 10, tzinfo=UTC))

    fetched = FolderSource(tmp_path / "export", callers=CallerIdentity(KEYS, HEADER)).gateway_logs(window)
    plain = FolderSource(tmp_path / "export").gateway_logs(window)

    assert fetched.rows.schema == GATEWAY_CALLER_LOG_SCHEMA and fetched.rejected.num_rows == 0
    assert dict(zip(fetched.rows["CorrelationId"].to_pylist(), fetched.rows["CallerId"].to_pylist(), strict=True)) == {
        row["CorrelationId"]: planted_caller(row["CorrelationId"])[0] for row in rows
    }
    assert SECRET not in json.dumps(fetched.rows.to_pylist(), default=str)
    assert plain.rows.schema == GATEWAY_LOG_SCHEMA
    assert plain.rows.equals(fetched.rows.drop_columns(["CallerId"]))


def test_a_caller_too_long_or_with_a_control_character_is_quarantined_with_its_reason(tmp_path):
    hour = datetime(2026, 3, 10, 9, tzinfo=UTC)
    base = {
        "TimeGenerated": hour,
        "IsRequestSuccess": True,
        "ProductId": "",
        "ApimSubscriptionId": "",
        "BackendId": "b",
    }
    callers = {"c-ok": "app-1", "c-long": "x" * 257, "c-nul": "app\x00evil", "c-max": "y" * 256, "c-none": None}
    lake = Lake(LocalObjectStore(tmp_path))
    gateway = [base | {"CorrelationId": cid, "CallerId": caller} for cid, caller in callers.items()]
    lake.write(hour_key(RAW_GATEWAY, hour), pa.Table.from_pylist(gateway, GATEWAY_CALLER_LOG_SCHEMA))
    lake.write(hour_key(RAW_LLM, hour), LLM_LOG_SCHEMA.empty_table())
    for dataset in (RAW_GATEWAY, RAW_LLM):
        lake.write(hour_key(dataset, hour, "rejected"), SOURCE_REJECT_SCHEMA.empty_table())

    attributed = attribute_hour(lake, hour, [], timedelta(minutes=10))

    assert attributed.reasons == {
        "ApiManagementGatewayLogs: CallerId is longer than 256 characters": 1,
        "ApiManagementGatewayLogs: control character in CallerId": 1,
    }
    requests = lake.read(hour_key(ATTRIBUTED, hour)).to_pylist()
    assert {r["correlation_id"]: r["caller_id"] for r in requests} == {
        "c-ok": "app-1",
        "c-max": "y" * 256,
        "c-none": None,
    }


def metadata_names(trace_records: list) -> Counter:
    return Counter(entry["name"] for record in trace_records for entry in record.get("metadata", []))


def test_the_workspace_and_folder_list_trace_record_keys_never_values(standin, simulator, tmp_path):
    logs = standin
    logs.reset_counters()

    keys = source(logs, CallerIdentity()).trace_record_keys(HOUR)

    planted = Counter()
    for correlation_id in simulator.gateway_logs(HOUR).rows["CorrelationId"].to_pylist():
        planted += metadata_names(json.loads(planted_caller(correlation_id)[1]))
    assert keys == dict(planted)
    (query,) = [received.query for received in logs.received]
    assert "TraceMetadata.value" not in query and "message" not in query
    folder = tmp_path / GATEWAY
    folder.mkdir()
    rows = [
        {"TimeGenerated": "2026-03-10T09:00:00Z", "TraceRecords": json.loads(planted_caller(f"c-{i}")[1])}
        for i in range(20)
    ]
    (folder / "part.jsonl").write_text("\n".join(json.dumps(row) for row in rows))
    expected = sum((metadata_names(row["TraceRecords"]) for row in rows), Counter())
    window = TimeWindow(datetime(2026, 3, 10, 9, tzinfo=UTC), datetime(2026, 3, 10, 10, tzinfo=UTC))
    assert FolderSource(tmp_path).trace_record_keys(window) == dict(expected)


def test_a_key_that_is_not_a_metadata_name_fails_the_command_naming_the_setting(tmp_path):
    done = chargeback(tmp_path, "report", "2026-11-20", CHARGEBACK_CALLER_TRACE_KEYS='appid,app"id')

    assert done.returncode == 1
    assert last_line(done.stderr) == (
        "Error: invalid chargeback configuration (CHARGEBACK_SOURCE=simulated): CHARGEBACK_CALLER_TRACE_KEYS / "
        "CHARGEBACK_CALLER_HEADER: not a trace-record metadata name: 'app\"id' (letters, digits, _ . : -; 1-64)"
    )
