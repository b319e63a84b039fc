"""A Log Analytics query API on loopback: `POST /v1/workspaces/{id}/query`, KQL executed by duckdb-kql.

It holds pyarrow tables under their Log Analytics names, runs the KQL it receives over them (after the
request's `timespan` prefilter) and answers in the service's JSON shape, so the real `LogsQueryClient`
parses it unmodified. Faults can be injected (any error status, e.g. 400, 401, 403, 404, 429 with or
without Retry-After, 503; slowness, result truncation as the service's PartialError, rows ingested
between two queries), and it records what it saw, including the highest number of queries in flight.

Wire details reproduced from the service:
- body `{"query": ..., "timespan": "<start>/<end>" | "<start>/<duration>" | "<duration>"}`;
- answer `{"tables": [{"name": "PrimaryResult", "columns": [{"name", "type"}], "rows": [[...]]}]}`,
  with type names datetime/string/long/int/bool/real/dynamic and datetimes as ISO 8601 in UTC with
  seven fractional digits and a `Z` (Kusto's 100 ns ticks);
- a truncated result is a 200 with an `error` object beside `tables` (shape copied from a recorded
  service answer kept in grafana/grafana's tests:
  pkg/tsdb/azuremonitor/testdata/loganalytics/9-log-analytics-response-error.json).
"""

import json
import re
import threading
import time
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from chargeback_pipeline.standins import BackgroundHTTPServer, send_json

try:
    import duckdb_kql
except ModuleNotFoundError as missing:  # a test dependency: the pipeline itself never runs KQL locally
    raise ModuleNotFoundError(
        "the Log Analytics stand-in runs KQL with duckdb-kql, a test dependency: "
        "pip install 'chargeback_pipeline[test]' (or make setup)"
    ) from missing

# The service truncates results at 500,000 rows (or 64 MB) and reports a partial result.
SERVICE_ROW_LIMIT = 500_000
TIME_COLUMN = "TimeGenerated"

_QUERY_PATH = re.compile(r"/v1/workspaces/(?P<workspace>[^/]+)/query")
_DURATION = re.compile(
    r"P(?:(?P<days>[\d.]+)D)?(?:T(?:(?P<hours>[\d.]+)H)?(?:(?P<minutes>[\d.]+)M)?(?:(?P<seconds>[\d.]+)S)?)?"
)
# The service's error codes (Log Analytics query API, "Errors" in its reference).
_ERROR_CODES = {
    400: "BadArgumentError",
    401: "AuthorizationRequiredError",
    403: "InsufficientAccessError",
    404: "PathNotFoundError",
    429: "TooManyRequests",
    503: "ServiceUnavailable",
}
_FAULT_MESSAGES = {
    400: "The request had some invalid properties",
    401: "Valid authentication was not provided",
    403: "The provided credentials have insufficient access to perform the requested operation",
    404: "The requested path does not exist",
}


@dataclass(frozen=True)
class ReceivedQuery:
    workspace_id: str
    query: str
    timespan: str | None
    authorization: str | None  # the Authorization header as received (None: no credential was sent)


@dataclass(frozen=True)
class _Fault:
    status: int | None  # None: answer normally (after the delay)
    retry_after: float | None = None
    delay_seconds: float = 0.0


def parse_timespan(text: str | None, now: datetime) -> tuple[datetime, datetime] | None:
    """The [start, end] of an ISO 8601 interval as the client sends it: start/end, start/duration or
    duration (ending now)."""
    if not text:
        return None
    first, _, second = text.partition("/")
    if not second:
        return now - parse_duration(first), now
    start = _parse_instant(first)
    end = start + parse_duration(second) if second.startswith("P") else _parse_instant(second)
    return start, end


def _parse_instant(text: str) -> datetime:
    instant = datetime.fromisoformat(text)
    if instant.tzinfo is None:
        raise ValueError(f"timespan bound without a time zone: {text!r}")
    return instant.astimezone(UTC)


def parse_duration(text: str) -> timedelta:
    match = _DURATION.fullmatch(text)
    if not match or text in ("P", "PT"):
        raise ValueError(f"unsupported ISO 8601 duration: {text!r}")
    parts = {name: float(value) for name, value in match.groupdict().items() if value}
    return timedelta(**parts)


def _wire_type(arrow_type: pa.DataType) -> str:
    """The Log Analytics column type name of an Arrow type."""
    if pa.types.is_timestamp(arrow_type) or pa.types.is_date(arrow_type):
        return "datetime"
    if pa.types.is_boolean(arrow_type):
        return "bool"
    if pa.types.is_int64(arrow_type) or pa.types.is_uint32(arrow_type) or pa.types.is_uint64(arrow_type):
        return "long"
    if pa.types.is_integer(arrow_type):
        return "int"
    if pa.types.is_floating(arrow_type) or pa.types.is_decimal(arrow_type):
        return "real"
    if pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type):
        return "string"
    return "dynamic"


def _wire_values(column: pa.ChunkedArray, wire_type: str) -> list:
    if wire_type == "datetime":
        as_text = pc.strftime(column.cast(pa.timestamp("us", tz="UTC")), format="%Y-%m-%dT%H:%M:%S")
        return pc.binary_join_element_wise(as_text, "0Z", "").to_pylist()  # 7 fractional digits
    if wire_type == "dynamic":  # the service sends dynamic values as JSON text
        return [None if value is None else json.dumps(value, default=str) for value in column.to_pylist()]
    if wire_type == "real":
        return [None if value is None else float(value) for value in column.to_pylist()]
    return column.to_pylist()


def result_to_wire(result: pa.Table) -> dict:
    """One Arrow result as the service's PrimaryResult table."""
    types = [_wire_type(field.type) for field in result.schema]
    values = [_wire_values(column, wire) for column, wire in zip(result.columns, types, strict=True)]
    return {
        "name": "PrimaryResult",
        "columns": [{"name": name, "type": wire} for name, wire in zip(result.column_names, types, strict=True)],
        "rows": [list(row) for row in zip(*values, strict=True)],
    }


def partial_error(limit: int) -> dict:
    """The `error` object the service puts beside `tables` when it truncated the result."""
    return {
        "code": "PartialError",
        "message": "There were some errors when processing your query.",
        "details": [
            {
                "code": "EngineError",
                "message": "Something went wrong processing your query on the server.",
                "innererror": {
                    "code": "-2133196797",
                    "message": f"The results of this query exceed the set limit of {limit} records.",
                    "severity": 2,
                    "severityName": "Error",
                },
            }
        ],
    }


def error_body(status: int, message: str, inner: dict | None = None, codes: dict[int, str] | None = None) -> dict:
    error = {"code": (codes or _ERROR_CODES).get(status, "InternalServerError"), "message": message}
    if inner:
        error["innererror"] = inner
    return {"error": error}


class LogAnalyticsStandIn(BackgroundHTTPServer):
    """A local Log Analytics workspace. Use as a context manager; `endpoint` is the client's endpoint.

    `workspace_id=None` answers any workspace id; otherwise other ids get 404 like the service.
    """

    def __init__(
        self, tables: dict[str, pa.Table] | None = None, workspace_id: str | None = None, port: int = 0
    ) -> None:
        super().__init__(port)
        self.workspace_id = workspace_id
        self._tables: dict[str, pa.Table] = {}
        self._lock = threading.Lock()
        self._faults: deque[_Fault] = deque()
        self._always: _Fault | None = None
        self._killed = False
        self._in_flight = 0
        self._late_rows: list[tuple[str, pa.Table]] = []
        self._database = duckdb_kql.connect()
        self.truncate_at: int | None = SERVICE_ROW_LIMIT
        self.delay_seconds = 0.0
        self.max_in_flight = 0
        self.received: list[ReceivedQuery] = []
        for name, table in (tables or {}).items():
            self.load_table(name, table)

    @property
    def endpoint(self) -> str:
        return f"{self.base_url}/v1"

    @property
    def queries_received(self) -> int:
        return len(self.received)

    def load_table(self, name: str, table: pa.Table) -> None:
        """Add or replace a table; its columns keep their Log Analytics names."""
        with self._lock:
            self._tables[name] = table

    def ingest_after_next_query(self, name: str, rows: pa.Table) -> None:
        """Append `rows` to table `name` right after the next query is answered: rows ingested between
        two queries of one fetch (say its count and its rows), as late-arriving rows are in the service."""
        with self._lock:
            self._late_rows.append((name, rows))

    def fail_next(self, count: int, status: int = 503, retry_after: float | None = None) -> None:
        """Answer the next `count` queries with `status` (and a Retry-After header when given), e.g. 403
        for an identity without the Log Analytics Reader role, 404 for a workspace that does not exist."""
        with self._lock:
            self._faults.extend(_Fault(status, retry_after) for _ in range(count))

    def slow_next(self, count: int, delay_seconds: float) -> None:
        """Answer the next `count` queries only after `delay_seconds` (client timeouts)."""
        with self._lock:
            self._faults.extend(_Fault(None, delay_seconds=delay_seconds) for _ in range(count))

    def fail_always(self, status: int = 503) -> None:
        with self._lock:
            self._always = _Fault(status, None)

    def kill(self) -> None:
        """Die like a killed process: new connections are refused, and a request on a connection the
        client kept open is dropped without an answer."""
        self._killed = True
        self.stop()

    def heal(self) -> None:
        """Stop injecting faults, delays and truncation below the service's own limit."""
        with self._lock:
            self._faults.clear()
            self._always = None
            self._late_rows.clear()
            self.delay_seconds = 0.0
            self.truncate_at = SERVICE_ROW_LIMIT

    def wait_until_idle(self, timeout_seconds: float = 30.0) -> None:
        """Wait for queries still being answered (e.g. slow ones a client gave up on) to finish."""
        deadline = time.monotonic() + timeout_seconds
        while self._in_flight and time.monotonic() < deadline:
            time.sleep(0.02)

    def reset_counters(self) -> None:
        with self._lock:
            self.received.clear()
            self.max_in_flight = 0

    def handle(self, handler: BaseHTTPRequestHandler, body: bytes) -> None:
        if self._killed:
            handler.close_connection = True  # no answer at all: the client sees the connection dropped
            return
        match = _QUERY_PATH.fullmatch(handler.path.split("?", 1)[0])
        if match is None:
            send_json(handler, 404, error_body(404, f"no route for {handler.path}"))
            return
        request = json.loads(body or b"{}")
        with self._lock:
            self.received.append(
                ReceivedQuery(
                    match["workspace"],
                    request.get("query", ""),
                    request.get("timespan"),
                    handler.headers.get("Authorization"),
                )
            )
            fault = self._faults.popleft() if self._faults else self._always
            self._in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self._in_flight)
        headers: dict = {}
        try:
            time.sleep(self.delay_seconds + (fault.delay_seconds if fault else 0.0))
            if fault is not None and fault.status is not None:
                headers = {} if fault.retry_after is None else {"Retry-After": f"{fault.retry_after:g}"}
                message = f"{_FAULT_MESSAGES[fault.status]} (injected fault)" if fault.status in _FAULT_MESSAGES else ""
                status, payload = fault.status, error_body(fault.status, message or "injected fault")
            elif self.workspace_id not in (None, match["workspace"]):
                status, payload = 404, error_body(404, f"workspace {match['workspace']} not found")
            else:
                status, payload = self._execute(request)
        finally:
            # The query stops being "in flight" once answered, before the answer is sent: a client that
            # has read it may start its next query at once, and must not be counted twice.
            with self._lock:
                self._in_flight -= 1
                late_rows, self._late_rows = self._late_rows, []
                for name, rows in late_rows:
                    self._tables[name] = pa.concat_tables([self._tables[name], rows], promote_options="permissive")
        send_json(handler, status, payload, headers)

    def _execute(self, request: dict) -> tuple[int, dict]:
        try:
            window = parse_timespan(request.get("timespan"), datetime.now(UTC))
        except ValueError as error:
            return 400, error_body(400, "The request had some invalid properties", {"message": str(error)})
        query = request.get("query", "")
        # duckdb-kql reads a table's columns from the catalog for `mv-expand` and `lookup`, and it does not
        # see tables registered from Arrow (DuckDB files them under `temp`): such a query gets a database
        # of its own holding copies (the caller-identity query; small test tables).
        needs_catalog = re.search(r"\b(mv-expand|lookup)\b", query) is not None
        con = duckdb_kql.connect() if needs_catalog else self._database.cursor()
        try:
            with self._lock:
                tables = dict(self._tables)
            for name, table in tables.items():
                con.register(name, _within(table, window))
                if needs_catalog:
                    con.execute(f'CREATE TABLE "{name}" AS SELECT * FROM temp."{name}"')
            result = duckdb_kql.kql(con, query, allow_write=False).to_arrow_table()
        except (duckdb_kql.KqlError, duckdb.Error) as error:
            inner = {"code": "SemanticError", "message": str(error)}
            return 400, error_body(400, "The request had some invalid properties", inner)
        finally:
            con.close()
        limit = self.truncate_at
        truncated = limit is not None and result.num_rows > limit
        payload: dict = {"tables": [result_to_wire(result.slice(0, limit) if truncated else result)]}
        if truncated:
            payload["error"] = partial_error(limit)
        return 200, payload


def _within(table: pa.Table, window: tuple[datetime, datetime] | None) -> pa.Table:
    """The request's timespan is a prefilter on TimeGenerated; the query still bounds its own window."""
    if window is None or TIME_COLUMN not in table.column_names:
        return table
    times = table[TIME_COLUMN]
    start = pa.scalar(window[0], times.type)
    end = pa.scalar(window[1], times.type)
    return table.filter(pc.and_(pc.greater_equal(times, start), pc.less_equal(times, end)))
