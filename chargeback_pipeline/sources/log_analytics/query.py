"""One KQL query against one workspace: within the workspace's concurrency slots, read into Arrow.

A query either answers (its checked rows, and the service's partial-result error if it cut the answer
short) or raises a LogAnalyticsQueryError: transient (throttled, 5xx, timed out, unreachable, the
fetch's time bound spent: TransientQueryError) or permanent (400, 401, 403, 404: PermanentQueryError,
saying what to fix). SDK, DuckDB and unreadable-answer errors are all turned into one of them.
"""

from threading import BoundedSemaphore
from typing import Any

import duckdb
import pyarrow as pa
from azure.core.exceptions import AzureError
from azure.monitor.query import LogsQueryClient, LogsQueryStatus

from chargeback_pipeline.sources.azure_errors import FETCH_DEADLINE, FetchDeadline, FetchTimeBoundReached
from chargeback_pipeline.sources.base import TimeWindow
from chargeback_pipeline.sources.log_analytics.arrow import ArrowAnswer
from chargeback_pipeline.sources.log_analytics.client import QUERY_LABEL
from chargeback_pipeline.sources.log_analytics.errors import TransientQueryError, UnexpectedAnswerError, query_failure
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
        endpoint: str = "",
    ) -> None:
        self.workspace_id = workspace_id
        self._client = client
        self._slots = slots
        self._query_timeout = query_timeout
        self._call_options = call_options
        self._endpoint = endpoint

    def count(self, query: TableQuery, window: TimeWindow, deadline: FetchDeadline | None = None) -> int:
        checked, partial_error = self.run(query.table, query.count(window), window, COUNT_SCHEMA, deadline)
        if partial_error is not None or checked.num_rows != 1 or checked["reason"][0].as_py():
            raise TransientQueryError(
                f"workspace {self.workspace_id}, table {query.table}, window {window}: unusable count() "
                f"answer ({partial_error or checked.to_pylist()})"
            )
        return checked["Count"][0].as_py()

    def run(
        self, table: str, kql: str, window: TimeWindow, schema: pa.Schema, deadline: FetchDeadline | None = None
    ) -> tuple[pa.Table, Any]:
        """The checked rows (schema columns + reason + record) and the partial-result error, if any.
        `deadline`: the time bound of the fetch this query belongs to."""
        label = f"workspace {self.workspace_id}, table {table}, window {window}"
        if deadline is not None and deadline.remaining() <= 0:
            raise TransientQueryError(f"Log Analytics query failed for {label}: {deadline.spent()}")
        answer = ArrowAnswer(schema)
        # Set here, in the thread that runs the query: the SDK's hooks and retry policy read them.
        tokens = QUERY_LABEL.set(label), FETCH_DEADLINE.set(deadline)
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
        except (AzureError, FetchTimeBoundReached) as error:
            failure = query_failure(error, label=label, workspace_id=self.workspace_id, endpoint=self._endpoint)
            raise failure from error
        except (duckdb.Error, UnexpectedAnswerError) as error:
            raise TransientQueryError(f"Log Analytics query failed for {label}: {error}") from error
        finally:
            QUERY_LABEL.reset(tokens[0])
            FETCH_DEADLINE.reset(tokens[1])
        if answer.checked is None:  # the SDK stopped handing its response to `cls`
            raise TransientQueryError(f"LogsQueryClient returned no response body for {label}")
        partial_error = result.partial_error if result.status == LogsQueryStatus.PARTIAL else None
        return answer.checked, partial_error
