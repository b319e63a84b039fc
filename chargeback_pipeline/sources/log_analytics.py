"""The Log Analytics source: APIM gateway and LLM logs through `azure-monitor-query`'s LogsQueryClient.

Completeness. The service truncates a result at 500,000 rows / 64 MB and reports it as a PARTIAL
result, not an error. So each window is first counted (the table's KQL followed by `| count`), cut
into pieces of about `rows_per_query` rows, and every piece that still comes back partial is halved
until each is complete. The rows landed (typed plus rejected) must equal the count, else it raises.

Resilience. Throttling (429, with or without Retry-After), 5xx and timeouts are retried by azure-core's
RetryPolicy (`retry_*` arguments; it honours Retry-After; `retry_timeout` bounds one call's total
time). POST is not retried by azure-core by default, so every call marks it retryable: these queries
only read. Each retry is logged as a WARNING by this module's logger. At most `max_concurrency` (<= 5,
the service's per-user limit) queries are in flight per workspace in this process.

Speed. The SDK's own response handling builds a Python object per cell and parses every datetime cell
(about 20k rows/s measured on a 2-core machine). Instead the response is streamed (`stream=True`) to a
`cls` hook that reads the JSON with DuckDB straight into typed Arrow columns (about 300k rows/s); the
SDK is handed only the `error` object, so it still tells a complete answer from a partial one.

Endpoints. A loopback endpoint (a local stand-in) is used over http without any credential; any other
endpoint must be https and always authenticates (DefaultAzureCredential unless one is given).
"""

import io
import ipaddress
import json
import logging
import math
import re
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path
from string import Template
from threading import BoundedSemaphore, Lock
from typing import Any
from urllib.parse import urlsplit

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
from azure.core.credentials import AccessToken, TokenCredential
from azure.core.exceptions import AzureError
from azure.core.pipeline.policies import SansIOHTTPPolicy
from azure.monitor.query import LogsQueryClient, LogsQueryStatus
from azure.monitor.querymetrics import MetricsClient

from chargeback_pipeline.schemas import (
    DEPLOYMENT_METRICS_SCHEMA,
    GATEWAY_LOG_SCHEMA,
    LLM_LOG_SCHEMA,
    SOURCE_REJECT_SCHEMA,
    UTC_TIMESTAMP,
)
from chargeback_pipeline.sources.azure_metrics import DeploymentMetricsReader
from chargeback_pipeline.sources.base import Fetched, TimeWindow

LOGGER = logging.getLogger(__name__)

DEFAULT_LOGS_ENDPOINT = "https://api.loganalytics.io/v1"
KQL_DIR = Path(__file__).resolve().parents[2] / "dbt_like_sql" / "kql"
MAX_WORKSPACE_CONCURRENCY = 5  # the service queues beyond 5 concurrent queries per user, then 429s
MAX_SERVER_TIMEOUT_SECONDS = 600  # the service's own ceiling for one query
READ_TIMEOUT_MARGIN_SECONDS = 30  # the client waits a little longer than the server may work
RETRIED_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
RETRYABLE_METHODS = frozenset({"GET", "HEAD", "POST"})  # POST is safe to retry: queries only read
COUNT_SCHEMA = pa.schema([("Count", pa.int64())])
TIME_COLUMN = "TimeGenerated"
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,254}")
_WORKSPACE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]{0,63}")


class LogAnalyticsQueryError(RuntimeError):
    """A query kept failing (after retries) or could not be made complete."""


class IncompleteWindowError(RuntimeError):
    """The rows landed for a window do not match the window's count()."""


class UnexpectedAnswerError(ValueError):
    """The service answered 200 with a body this source cannot read."""


# --- endpoints and credentials ----------------------------------------------------------------------


def is_loopback(endpoint: str) -> bool:
    host = urlsplit(endpoint if "://" in endpoint else f"https://{endpoint}").hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class _NoCredential:
    """Stands in for a credential on loopback, where the authentication policy is a no-op."""

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        raise RuntimeError("loopback endpoints are never sent credentials")


# What the current thread is querying, for the retry log lines (hooks only see the HTTP request).
_QUERY_LABEL: ContextVar[str] = ContextVar("log_analytics_query_label", default="an Azure Monitor request")


def _warn_on_retry(request) -> None:
    """raw_request_hook: azure-core's RetryPolicy does not log its retries, so we do."""
    retry = request.context.get("retry_count", 0)
    if retry:
        LOGGER.warning(
            "Retrying %s (retry %d) after a throttled, failed or timed-out attempt", _QUERY_LABEL.get(), retry
        )


def _warn_on_refusal(response) -> None:
    """raw_response_hook: runs once per attempt, inside the retry loop."""
    status = response.http_response.status_code
    if status in RETRIED_STATUSES:
        retry_after = response.http_response.headers.get("Retry-After")
        LOGGER.warning(
            "%s answered HTTP %d%s for %s; azure-core retries it while retries and time remain",
            urlsplit(response.http_request.url).netloc,
            status,
            f" (Retry-After: {retry_after}s)" if retry_after else " (no Retry-After)",
            _QUERY_LABEL.get(),
        )


def azure_client_arguments(
    endpoint: str,
    credential: TokenCredential | None,
    *,
    retry_total: int,
    retry_backoff_factor: float,
    retry_backoff_max: float,
    retry_timeout: float,
) -> tuple[TokenCredential, dict[str, Any]]:
    """The credential and keyword arguments of an Azure Monitor SDK client for `endpoint`."""
    options: dict[str, Any] = {
        # One budget for every kind of retry; azure-core otherwise stops status retries at 3.
        "retry_total": retry_total,
        "retry_status": retry_total,
        "retry_connect": retry_total,
        "retry_read": retry_total,
        "retry_backoff_factor": retry_backoff_factor,
        "retry_backoff_max": retry_backoff_max,
        "timeout": retry_timeout,  # RetryPolicy: total seconds for one call, all attempts and waits
        "raw_request_hook": _warn_on_retry,
        "raw_response_hook": _warn_on_refusal,
    }
    if is_loopback(endpoint):
        return _NoCredential(), options | {"authentication_policy": SansIOHTTPPolicy()}
    if not endpoint.startswith("https://"):
        raise ValueError(f"{endpoint!r}: only loopback endpoints may be used without https")
    if credential is None:
        from azure.identity import DefaultAzureCredential  # imported late: slow, and unused on loopback

        credential = DefaultAzureCredential()
    return credential, options


def metrics_audience(endpoint: str) -> str:
    """The token audience of a regional metrics endpoint (sovereign clouds differ), e.g.
    https://eastus.metrics.monitor.azure.com -> https://metrics.monitor.azure.com."""
    host = urlsplit(endpoint).hostname or ""
    _, _, cloud = host.partition(".metrics.")
    return f"https://metrics.{cloud}" if cloud else "https://metrics.monitor.azure.com"


# --- queries ----------------------------------------------------------------------------------------


def kql_datetime(instant: datetime) -> str:
    """A KQL datetime literal, formatted by us from a timezone-aware datetime (never from text)."""
    if instant.tzinfo is None:
        raise ValueError("query bounds must be timezone-aware")
    return f"datetime({instant.astimezone(UTC):%Y-%m-%dT%H:%M:%S.%fZ})"


def validated_table_name(name: str) -> str:
    if not _IDENTIFIER.fullmatch(name):
        raise ValueError(f"not a Log Analytics table name: {name!r}")
    return name


@dataclass(frozen=True)
class TableQuery:
    """One KQL file bound to one table and the schema its projection lands in."""

    table: str
    schema: pa.Schema
    template: Template

    @classmethod
    def load(cls, path: Path, table: str, schema: pa.Schema) -> "TableQuery":
        lines = path.read_text(encoding="utf-8").splitlines()
        text = "\n".join(line for line in lines if not line.lstrip().startswith("//")).strip()
        return cls(validated_table_name(table), schema, Template(text))

    def rows(self, window: TimeWindow) -> str:
        return self.template.substitute(
            table=self.table, start=kql_datetime(window.start), end=kql_datetime(window.end)
        )

    def count(self, window: TimeWindow) -> str:
        return f"{self.rows(window)}\n| count"


# --- concurrency ------------------------------------------------------------------------------------

_WORKSPACE_SLOTS: dict[str, BoundedSemaphore] = {}
_WORKSPACE_SLOTS_LOCK = Lock()


def workspace_slots(workspace_id: str, limit: int) -> BoundedSemaphore:
    """The process-wide semaphore of a workspace; the first source to ask sets its size."""
    with _WORKSPACE_SLOTS_LOCK:
        return _WORKSPACE_SLOTS.setdefault(workspace_id.lower(), BoundedSemaphore(limit))


# --- response body -> Arrow -------------------------------------------------------------------------

_ANSWER_COLUMNS = {
    "tables": 'STRUCT(name VARCHAR, columns STRUCT(name VARCHAR, "type" VARCHAR)[], "rows" VARCHAR[][])[]',
    "error": "JSON",
}
_DUCKDB_TYPES = {pa.int32(): "INTEGER", pa.int64(): "BIGINT", pa.bool_(): "BOOLEAN", pa.string(): "VARCHAR"}


def _typed_cell(cell: str, arrow_type: pa.DataType) -> tuple[str, str]:
    """DuckDB expression typing one cell (sent as text), and the condition that it could not be typed."""
    if pa.types.is_timestamp(arrow_type):
        typed = f"TRY_CAST({cell} AS TIMESTAMPTZ)"
        return typed, f"{typed} IS NULL"  # a row without its time cannot be placed in any window
    sql_type = _DUCKDB_TYPES[arrow_type]
    typed = f"TRY_CAST({cell} AS {sql_type})"
    if pa.types.is_integer(arrow_type):  # TRY_CAST alone would round '1.5' to 2
        return typed, f"{cell} IS NOT NULL AND (NOT regexp_full_match({cell}, '-?[0-9]+') OR {typed} IS NULL)"
    return typed, f"{cell} IS NOT NULL AND {typed} IS NULL"


def _checked_rows_sql(schema: pa.Schema, positions: dict[str, int]) -> str:
    """Typed columns of every row, plus `reason` ('' when the row typed cleanly) and its JSON `record`."""
    typed, reasons, record = [], [], []
    for field in schema:
        cell = f"r[{positions[field.name]}]"
        value, failed = _typed_cell(cell, field.type)
        typed.append(f'{value} AS "{field.name}"')
        reasons.append(f"CASE WHEN {failed} THEN '{field.name} is not a valid {field.type}' END")
        record.append(f'"{field.name}" := {cell}')
    return (
        f"SELECT {', '.join(typed)}, concat_ws('; ', {', '.join(reasons)}) AS reason, "
        f"CASE WHEN reason <> '' THEN to_json(struct_pack({', '.join(record)}))::VARCHAR END AS record "
        "FROM (SELECT unnest(tables[1].rows) AS r FROM answer)"
    )


class _ArrowAnswer:
    """`cls` hook of `query_workspace(stream=True)`: reads the streamed body with DuckDB into typed
    Arrow columns, and returns only the `error` object for the SDK to classify the answer."""

    def __init__(self, schema: pa.Schema) -> None:
        self.schema = schema
        self.checked: pa.Table | None = None  # schema columns + reason + record

    def __call__(self, pipeline_response: Any, body_chunks: Any, _headers: Any) -> dict:
        body = b"".join(body_chunks)
        con = _duckdb_cursor()
        try:
            # The whole answer is one JSON object; DuckDB reserves maximum_object_size bytes, so ask exactly.
            answer = con.read_json(io.BytesIO(body), columns=_ANSWER_COLUMNS, maximum_object_size=len(body) + 1)
            con.register("body", answer)
            con.execute("CREATE TEMP TABLE answer AS SELECT * FROM body")  # parse once, read twice
            columns, error = con.sql("SELECT tables[1].columns, error FROM answer").fetchall()[0]
            positions = {column["name"]: index for index, column in enumerate(columns or [], start=1)}
            missing = [name for name in self.schema.names if name not in positions]
            if missing:
                raise UnexpectedAnswerError(f"the answer lacks the columns {missing} (got {list(positions)})")
            self.checked = con.sql(_checked_rows_sql(self.schema, positions)).to_arrow_table()
        finally:
            con.close()
        return {"error": json.loads(error) if error else None}


_DUCKDB: duckdb.DuckDBPyConnection | None = None
_DUCKDB_LOCK = Lock()


def _duckdb_cursor() -> duckdb.DuckDBPyConnection:
    """A fresh connection (cursor) to one in-memory database shared by the process: opening a database
    costs ~15 ms, a cursor nothing. Temp tables are private to each cursor, so threads do not meet."""
    global _DUCKDB
    with _DUCKDB_LOCK:
        if _DUCKDB is None:
            _DUCKDB = duckdb.connect()
        cursor = _DUCKDB.cursor()
    cursor.execute("SET TimeZone = 'UTC'")
    return cursor


def split_checked(checked: pa.Table, schema: pa.Schema, source_table: str, window: TimeWindow, origin: str) -> Fetched:
    """Clean rows in `schema`, and the others as rejects placed at their own time (the window's start
    when their time itself could not be read)."""
    clean = pc.equal(checked["reason"], "")
    rejected = checked.filter(pc.invert(clean))
    own_time = rejected[TIME_COLUMN].cast(UTC_TIMESTAMP)
    return Fetched(
        rows=checked.filter(clean).select(schema.names).cast(schema),
        rejected=pa.table(
            {
                "source_table": pa.array([source_table] * rejected.num_rows, pa.string()),
                "reason": rejected["reason"],
                "origin": pa.array([origin] * rejected.num_rows, pa.string()),
                "record": rejected["record"],
                "placed_at": pc.coalesce(own_time, pa.scalar(window.start, UTC_TIMESTAMP)),
            },
            schema=SOURCE_REJECT_SCHEMA,
        ),
    )


def concat_fetched(parts: Sequence[Fetched], schema: pa.Schema) -> Fetched:
    return Fetched(
        rows=pa.concat_tables([schema.empty_table(), *(part.rows for part in parts)]),
        rejected=pa.concat_tables([SOURCE_REJECT_SCHEMA.empty_table(), *(part.rejected for part in parts)]),
    )


def partial_reason(error: Any) -> str:
    """The service's own words for a partial result: the innermost message of its first detail."""
    reason = error.message
    for detail in error.details or []:
        inner = detail
        while isinstance(inner.get("innererror"), dict):
            inner = inner["innererror"]
        return inner.get("message") or reason
    return reason


def split_evenly(window: TimeWindow, pieces: int) -> list[TimeWindow]:
    span = window.end - window.start
    bounds = sorted({window.start + span * i / pieces for i in range(pieces)} | {window.end})
    return [TimeWindow(start, end) for start, end in pairwise(bounds)]


# --- the source -------------------------------------------------------------------------------------


class LogAnalyticsSource:
    """Reads APIM logs from a Log Analytics workspace and token metrics from Azure Monitor.

    workspace_id: the workspace's id (GUID). logs_endpoint: the Log Analytics API of the cloud,
    e.g. https://api.loganalytics.io/v1 (public), https://api.loganalytics.us/v1 (US Gov).
    metrics_endpoint: the regional metrics endpoint of the Azure OpenAI resources, e.g.
    https://eastus.metrics.monitor.azure.com; resource_ids: their ARM ids (no ids: no metrics).
    rows_per_query: target rows per query when cutting a window (the service stops at 500,000 rows
    or 64 MB); min_split: the smallest piece a still-partial window is halved down to.
    query_timeout: seconds the server may work on one query (<= 600); read_timeout: seconds the
    client waits for an answer before retrying (default query_timeout + 30); retry_timeout: seconds
    one call may take in all, retries and waits included.
    """

    name = "log_analytics"

    def __init__(
        self,
        workspace_id: str,
        logs_endpoint: str = DEFAULT_LOGS_ENDPOINT,
        metrics_endpoint: str | None = None,
        resource_ids: Sequence[str] = (),
        gateway_table: str = "ApiManagementGatewayLogs",
        llm_table: str = "ApiManagementGatewayLlmLog",
        max_concurrency: int = MAX_WORKSPACE_CONCURRENCY,
        retry_total: int = 6,
        retry_backoff_factor: float = 1.0,
        retry_backoff_max: float = 60.0,
        retry_timeout: float = 1800.0,
        query_timeout: int = 300,
        read_timeout: float | None = None,
        rows_per_query: int = 100_000,
        min_split: timedelta = timedelta(seconds=1),
        max_metric_series: int = 1000,
        credential: TokenCredential | None = None,
        kql_dir: Path = KQL_DIR,
    ) -> None:
        if not _WORKSPACE_ID.fullmatch(workspace_id):
            raise ValueError(f"not a workspace id: {workspace_id!r}")
        if not 1 <= max_concurrency <= MAX_WORKSPACE_CONCURRENCY:
            raise ValueError(f"max_concurrency must be 1..{MAX_WORKSPACE_CONCURRENCY}, got {max_concurrency}")
        if not 1 <= query_timeout <= MAX_SERVER_TIMEOUT_SECONDS:
            raise ValueError(f"query_timeout must be 1..{MAX_SERVER_TIMEOUT_SECONDS} seconds")
        if resource_ids and not metrics_endpoint:
            raise ValueError("resource_ids need a metrics_endpoint (the resources' regional endpoint)")
        self.workspace_id = workspace_id
        self._gateway = TableQuery.load(kql_dir / "gateway_logs.kql", gateway_table, GATEWAY_LOG_SCHEMA)
        self._llm = TableQuery.load(kql_dir / "llm_logs.kql", llm_table, LLM_LOG_SCHEMA)
        self._max_concurrency = max_concurrency
        self._slots = workspace_slots(workspace_id, max_concurrency)
        self._query_timeout = query_timeout
        self._rows_per_query = rows_per_query
        self._min_split = min_split
        retry = {
            "retry_total": retry_total,
            "retry_backoff_factor": retry_backoff_factor,
            "retry_backoff_max": retry_backoff_max,
            "retry_timeout": retry_timeout,
        }
        self._call_options = {
            "retry_on_methods": RETRYABLE_METHODS,
            "read_timeout": read_timeout or query_timeout + READ_TIMEOUT_MARGIN_SECONDS,
        }
        logs_credential, logs_options = azure_client_arguments(logs_endpoint, credential, **retry)
        self._client = LogsQueryClient(logs_credential, endpoint=logs_endpoint, **logs_options)
        self._metrics: DeploymentMetricsReader | None = None
        if resource_ids:
            metrics_credential, metrics_options = azure_client_arguments(metrics_endpoint, credential, **retry)
            client = MetricsClient(
                metrics_endpoint, metrics_credential, audience=metrics_audience(metrics_endpoint), **metrics_options
            )
            self._metrics = DeploymentMetricsReader(
                client, resource_ids, max_series=max_metric_series, call_options=self._call_options
            )

    def gateway_logs(self, window: TimeWindow) -> Fetched:
        return self._fetch(self._gateway, window)

    def llm_logs(self, window: TimeWindow) -> Fetched:
        return self._fetch(self._llm, window)

    def deployment_metrics(self, window: TimeWindow) -> Fetched:
        if self._metrics is None:
            LOGGER.warning("No Azure OpenAI resource ids configured: no deployment metrics for %s", window)
            return Fetched(rows=DEPLOYMENT_METRICS_SCHEMA.empty_table())
        token = _QUERY_LABEL.set(f"deployment metrics, window {window}")
        try:
            return self._metrics.read(window)
        finally:
            _QUERY_LABEL.reset(token)

    def _fetch(self, query: TableQuery, window: TimeWindow) -> Fetched:
        started = time.monotonic()
        expected = self._count(query, window)
        if expected == 0:
            return concat_fetched([], query.schema)
        parts = self._complete(query, split_evenly(window, math.ceil(expected / self._rows_per_query)))
        fetched = concat_fetched(parts, query.schema)
        landed = fetched.rows.num_rows + fetched.rejected.num_rows
        if landed != expected:
            raise IncompleteWindowError(
                f"workspace {self.workspace_id}, table {query.table}, window {window}: count() says "
                f"{expected} rows but {landed} landed (late ingestion or a lost piece); fetch it again"
            )
        LOGGER.info(
            "Fetched %d rows (%d rejected) of %s for %s in %d pieces, %.1fs",
            fetched.rows.num_rows, fetched.rejected.num_rows, query.table, window, len(parts),
            time.monotonic() - started,
        )  # fmt: skip
        return fetched

    def _complete(self, query: TableQuery, pieces: list[TimeWindow]) -> list[Fetched]:
        """The rows of every piece, in time order; a piece answered partially is halved and asked again,
        round after round, with up to `max_concurrency` queries in flight."""
        complete: dict[TimeWindow, Fetched] = {}
        with ThreadPoolExecutor(max_workers=self._max_concurrency) as pool:
            while pieces:
                answers = pool.map(lambda piece: self._run(query.table, query.rows(piece), piece, query.schema), pieces)
                halves = []
                for piece, (checked, partial_error) in zip(pieces, answers, strict=True):
                    if partial_error is None:
                        origin = f"log_analytics://{self.workspace_id}/{query.table}?window={piece}"
                        complete[piece] = split_checked(checked, query.schema, query.table, piece, origin)
                    else:
                        halves += self._halves(query, piece, checked.num_rows, partial_error)
                pieces = halves
        return [complete[piece] for piece in sorted(complete, key=lambda piece: piece.start)]

    def _halves(self, query: TableQuery, piece: TimeWindow, rows: int, partial_error: Any) -> list[TimeWindow]:
        if piece.end - piece.start <= self._min_split:
            raise LogAnalyticsQueryError(
                f"workspace {self.workspace_id}, table {query.table}, window {piece}: still a partial "
                f"result at the smallest split ({self._min_split}): {partial_reason(partial_error)}"
            )
        LOGGER.warning(
            "Partial result (%d rows) for workspace %s, table %s, window %s: splitting it in halves (%s)",
            rows, self.workspace_id, query.table, piece, partial_reason(partial_error),
        )  # fmt: skip
        return split_evenly(piece, 2)

    def _count(self, query: TableQuery, window: TimeWindow) -> int:
        checked, partial_error = self._run(query.table, query.count(window), window, COUNT_SCHEMA)
        if partial_error is not None or checked.num_rows != 1 or checked["reason"][0].as_py():
            raise LogAnalyticsQueryError(
                f"workspace {self.workspace_id}, table {query.table}, window {window}: unusable count() "
                f"answer ({partial_error or checked.to_pylist()})"
            )
        return checked["Count"][0].as_py()

    def _run(self, table: str, kql: str, window: TimeWindow, schema: pa.Schema) -> tuple[pa.Table, Any]:
        label = f"workspace {self.workspace_id}, table {table}, window {window}"
        answer = _ArrowAnswer(schema)
        token = _QUERY_LABEL.set(label)
        try:
            with self._slots:
                result = self._client.query_workspace(
                    self.workspace_id,
                    kql,
                    timespan=(window.start, window.end),
                    server_timeout=self._query_timeout,
                    stream=True,
                    cls=answer,
                    **self._call_options,
                )
        except (AzureError, duckdb.Error, UnexpectedAnswerError) as error:
            raise LogAnalyticsQueryError(f"Log Analytics query failed for {label}: {error}") from error
        finally:
            _QUERY_LABEL.reset(token)
        if answer.checked is None:  # the SDK stopped handing its response to `cls`
            raise LogAnalyticsQueryError(f"LogsQueryClient returned no response body for {label}")
        partial_error = result.partial_error if result.status == LogsQueryStatus.PARTIAL else None
        return answer.checked, partial_error
