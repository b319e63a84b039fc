"""LogAnalyticsSource: APIM gateway and LLM logs from a workspace, complete or not at all.

The service truncates a result at 500,000 rows / 64 MB and reports it as a PARTIAL result, not an
error. So each window is first counted (the table's KQL followed by `| count`), cut into pieces of
about `rows_per_query` rows, and every piece that still comes back partial is halved until each is
complete. The rows landed (typed plus rejected) must equal the count, else it raises.
"""

import math
import re
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any

import pyarrow as pa
from azure.core.credentials import TokenCredential
from azure.monitor.query import LogsQueryClient
from azure.monitor.querymetrics import MetricsClient

from chargeback_pipeline.sources.azure_errors import FETCH_DEADLINE, FetchDeadline
from chargeback_pipeline.sources.azure_metrics import DeploymentMetricsReader
from chargeback_pipeline.sources.base import Fetched, TimeWindow
from chargeback_pipeline.sources.callers import NO_CALLERS, CallerIdentity
from chargeback_pipeline.sources.log_analytics.arrow import concat_fetched, split_checked
from chargeback_pipeline.sources.log_analytics.client import (
    DEFAULT_LOGS_ENDPOINT,
    LOGGER,
    MAX_WORKSPACE_CONCURRENCY,
    QUERY_LABEL,
    RETRYABLE_METHODS,
    azure_client_arguments,
    metrics_audience,
    workspace_slots,
)
from chargeback_pipeline.sources.log_analytics.errors import IncompleteWindowError, TransientQueryError
from chargeback_pipeline.sources.log_analytics.kql import KQL_DIR, TableQuery, caller_placeholders
from chargeback_pipeline.sources.log_analytics.query import WorkspaceQueries
from chargeback_pipeline.storage.schemas import DEPLOYMENT_METRICS_SCHEMA, GATEWAY_LOG_SCHEMA, LLM_LOG_SCHEMA

TRACE_KEYS_SCHEMA = pa.schema([("Key", pa.string()), ("Records", pa.int64())])
MAX_SERVER_TIMEOUT_SECONDS = 600  # the service's own ceiling for one query
READ_TIMEOUT_MARGIN_SECONDS = 30  # the client waits a little longer than the server may work
_WORKSPACE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]{0,63}")
NO_METRICS = (
    "no Azure OpenAI resource ids configured: reconciliation with Azure Monitor is switched off "
    "(CHARGEBACK_RECONCILE_WITH_AZURE_MONITOR=false)"
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


class LogAnalyticsSource:
    """Reads APIM logs from a Log Analytics workspace and token metrics from Azure Monitor.

    workspace_id: the workspace's id (GUID). logs_endpoint: the Log Analytics API of the cloud,
    e.g. https://api.loganalytics.io/v1 (public), https://api.loganalytics.us/v1 (US Gov).
    metrics_endpoint: the regional metrics endpoint of the Azure OpenAI resources, e.g.
    https://eastus.metrics.monitor.azure.com; resource_ids: their ARM ids (no ids: no metrics).
    rows_per_query: target rows per query when cutting a window (the service stops at 500,000 rows
    or 64 MB); min_split: the smallest piece a still-partial window is halved down to.
    query_timeout: seconds the server may work on one query (<= 600); read_timeout: seconds the
    client waits for an answer before retrying (default query_timeout + 30); fetch_timeout: the time
    bound of one fetch (a table's window: its count and every piece; or a window's metrics), every
    attempt, retry and wait included: past it the fetch gives up with a TransientSourceError.
    callers: the trace-record keys and header naming the caller (sources/callers.py); none: the gateway
    query is gateway_logs.kql, unchanged.
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
        fetch_timeout: float = 600.0,
        query_timeout: int = 300,
        read_timeout: float | None = None,
        rows_per_query: int = 100_000,
        min_split: timedelta = timedelta(seconds=1),
        max_metric_series: int = 1000,
        credential: TokenCredential | None = None,
        kql_dir: Path = KQL_DIR,
        callers: CallerIdentity = NO_CALLERS,
    ) -> None:
        if not _WORKSPACE_ID.fullmatch(workspace_id):
            raise ValueError(f"not a workspace id: {workspace_id!r}")
        if not 1 <= max_concurrency <= MAX_WORKSPACE_CONCURRENCY:
            raise ValueError(f"max_concurrency must be 1..{MAX_WORKSPACE_CONCURRENCY}, got {max_concurrency}")
        if not 1 <= query_timeout <= MAX_SERVER_TIMEOUT_SECONDS:
            raise ValueError(f"query_timeout must be 1..{MAX_SERVER_TIMEOUT_SECONDS} seconds")
        if not fetch_timeout > 0:
            raise ValueError(f"fetch_timeout must be positive, got {fetch_timeout}")
        if resource_ids and not metrics_endpoint:
            raise ValueError("resource_ids need a metrics_endpoint (the resources' regional endpoint)")
        self.workspace_id = workspace_id
        if callers.configured:  # only then is TraceRecords touched at all, and only its named values read
            kql, schema = kql_dir / "gateway_logs_callers.kql", callers.gateway_schema()
            self._gateway = TableQuery.load(kql, gateway_table, schema, caller_placeholders(callers))
        else:
            self._gateway = TableQuery.load(kql_dir / "gateway_logs.kql", gateway_table, GATEWAY_LOG_SCHEMA)
        self._llm = TableQuery.load(kql_dir / "llm_logs.kql", llm_table, LLM_LOG_SCHEMA)
        self._trace_keys = TableQuery.load(kql_dir / "trace_keys.kql", gateway_table, TRACE_KEYS_SCHEMA)
        self._max_concurrency = max_concurrency
        slots = workspace_slots(workspace_id, max_concurrency)
        self._rows_per_query = rows_per_query
        self._min_split = min_split
        self.fetch_timeout = fetch_timeout
        retry = {
            "retry_total": retry_total,
            "retry_backoff_factor": retry_backoff_factor,
            "retry_backoff_max": retry_backoff_max,
            "retry_timeout": fetch_timeout,
        }
        call_options = {
            "retry_on_methods": RETRYABLE_METHODS,
            "read_timeout": read_timeout or query_timeout + READ_TIMEOUT_MARGIN_SECONDS,
        }
        logs_credential, logs_options = azure_client_arguments(logs_endpoint, credential, **retry)
        logs_client = LogsQueryClient(logs_credential, endpoint=logs_endpoint, **logs_options)
        self._queries = WorkspaceQueries(
            logs_client, workspace_id, slots, query_timeout, call_options, endpoint=logs_endpoint
        )
        self._metrics: DeploymentMetricsReader | None = None
        if resource_ids:
            metrics_credential, metrics_options = azure_client_arguments(metrics_endpoint, credential, **retry)
            metrics_client = MetricsClient(
                metrics_endpoint, metrics_credential, audience=metrics_audience(metrics_endpoint), **metrics_options
            )
            self._metrics = DeploymentMetricsReader(
                metrics_client,
                resource_ids,
                max_series=max_metric_series,
                call_options=call_options,
                endpoint=metrics_endpoint,
            )

    def gateway_logs(self, window: TimeWindow) -> Fetched:
        return self._fetch(self._gateway, window)

    def llm_logs(self, window: TimeWindow) -> Fetched:
        return self._fetch(self._llm, window)

    def trace_record_keys(self, window: TimeWindow) -> dict[str, int]:
        """The metadata names in the gateway's trace records of the window and how many records carry each
        (trace_keys.kql: names only, never values), for onboarding (`chargeback discover`)."""
        deadline = FetchDeadline.starting_now(self.fetch_timeout)
        query = self._trace_keys
        checked, partial_error = self._queries.run(query.table, query.rows(window), window, query.schema, deadline)
        if partial_error is not None:
            raise TransientQueryError(f"trace-record keys of {window}: {partial_reason(partial_error)}")
        return dict(zip(checked["Key"].to_pylist(), checked["Records"].to_pylist(), strict=True))

    def deployment_metrics(self, window: TimeWindow) -> Fetched:
        if self._metrics is None:
            LOGGER.warning("No Azure OpenAI resource ids configured: no deployment metrics for %s", window)
            return Fetched(rows=DEPLOYMENT_METRICS_SCHEMA.empty_table(), declared_empty=NO_METRICS)
        # The metrics are read in this thread: the SDK's hooks and retry policy read these.
        tokens = (
            QUERY_LABEL.set(f"deployment metrics, window {window}"),
            FETCH_DEADLINE.set(FetchDeadline.starting_now(self.fetch_timeout)),
        )
        try:
            return self._metrics.read(window)
        finally:
            QUERY_LABEL.reset(tokens[0])
            FETCH_DEADLINE.reset(tokens[1])

    def _fetch(self, query: TableQuery, window: TimeWindow) -> Fetched:
        started = time.monotonic()
        deadline = FetchDeadline.starting_now(self.fetch_timeout)
        expected = self._queries.count(query, window, deadline)
        if expected == 0:
            return concat_fetched([], query.schema)
        pieces = split_evenly(window, math.ceil(expected / self._rows_per_query))
        parts = self._complete(query, pieces, deadline)
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

    def _complete(self, query: TableQuery, pieces: list[TimeWindow], deadline: FetchDeadline) -> list[Fetched]:
        """The rows of every piece, in time order; a piece answered partially is halved and asked again,
        round after round (bounded: no piece is halved below `min_split`, and every query ends by the
        fetch's deadline), with up to `max_concurrency` queries in flight."""
        complete: dict[TimeWindow, Fetched] = {}
        with ThreadPoolExecutor(max_workers=self._max_concurrency) as pool:
            while pieces:
                answers = pool.map(
                    lambda piece: self._queries.run(query.table, query.rows(piece), piece, query.schema, deadline),
                    pieces,
                )
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
            raise TransientQueryError(
                f"workspace {self.workspace_id}, table {query.table}, window {piece}: still a partial "
                f"result at the smallest split ({self._min_split}): {partial_reason(partial_error)}"
            )
        LOGGER.warning(
            "Partial result (%d rows) for workspace %s, table %s, window %s: splitting it in halves (%s)",
            rows, self.workspace_id, query.table, piece, partial_reason(partial_error),
        )  # fmt: skip
        return split_evenly(piece, 2)
