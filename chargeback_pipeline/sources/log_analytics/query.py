"""One KQL query against one workspace: within the workspace's concurrency slots, read into Arrow.

A query either answers (its checked rows, and the service's partial-result error if it cut the answer
short) or raises LogAnalyticsQueryError: SDK, DuckDB and unreadable-answer errors are all turned into it.
"""

from threading import BoundedSemaphore
from typing import Any

import duckdb
import pyarrow as pa
from azure.core.exceptions import AzureError
from azure.monitor.query import LogsQueryClient, LogsQueryStatus

from chargeback_pipeline.sources.base import TimeWindow
from chargeback_pipeline.sources.log_analytics.arrow import ArrowAnswer
from chargeback_pipeline.sources.log_analytics.client import QUERY_LABEL
from chargeback_pipeline.sources.log_analytics.errors import LogAnalyticsQueryError, UnexpectedAnswerError
from chargeback_pipeline.sources.log_analytics.kql import TableQuery

COUNT_SCHEMA = pa.schema([("Count", pa.int64())])


class WorkspaceQueries:
    """Runs queries against one workspace with a shared client, slots, server timeout and call options."""

    def __init__(
        self,
        client: LogsQueryClient,
        workspace_id: str,
        slots: BoundedSemaphore,
        query_timeout: int,
        call_options: dict[str, Any],
    ) -> None:
        self.workspace_id = workspace_id
        self._client = client
        self._slots = slots
        self._query_timeout = query_timeout
        self._call_options = call_options

    def count(self, query: TableQuery, window: TimeWindow) -> int:
        checked, partial_error = self.run(query.table, query.count(window), window, COUNT_SCHEMA)
        if partial_error is not None or checked.num_rows != 1 or checked["reason"][0].as_py():
            raise LogAnalyticsQueryError(
                f"workspace {self.workspace_id}, table {query.table}, window {window}: unusable count() "
                f"answer ({partial_error or checked.to_pylist()})"
            )
        return checked["Count"][0].as_py()

    def run(self, table: str, kql: str, window: TimeWindow, schema: pa.Schema) -> tuple[pa.Table, Any]:
        """The checked rows (schema columns + reason + record) and the partial-result error, if any."""
        label = f"workspace {self.workspace_id}, table {table}, window {window}"
        answer = ArrowAnswer(schema)
        token = QUERY_LABEL.set(label)
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
            QUERY_LABEL.reset(token)
        if answer.checked is None:  # the SDK stopped handing its response to `cls`
            raise LogAnalyticsQueryError(f"LogsQueryClient returned no response body for {label}")
        partial_error = result.partial_error if result.status == LogsQueryStatus.PARTIAL else None
        return answer.checked, partial_error
