"""The Log Analytics source: APIM gateway and LLM logs through `azure-monitor-query`'s LogsQueryClient.

Completeness. The service truncates a result at 500,000 rows / 64 MB and reports it as a PARTIAL
result, not an error. So each window is first counted (the table's KQL followed by `| count`), cut
into pieces of about `rows_per_query` rows, and every piece that still comes back partial is halved
until each is complete. The rows landed (typed plus rejected) must equal the count, else it raises.

Resilience. Throttling (429, with or without Retry-After), 5xx, timeouts and connection failures are
retried by azure-core's RetryPolicy (`retry_*` arguments; it honours Retry-After), within the time bound
of the fetch (`fetch_timeout`: a table's window, its count and every piece, all attempts and waits
included); each retry is logged as a WARNING by the `chargeback_pipeline.sources.log_analytics` logger,
saying `attempt n of at most N` and when the fetch gives up. What still fails is a TransientQueryError
(the step retries it). 400, 401, 403 and 404 are not retried: a PermanentQueryError says what to fix (the
role and its scope for 403, the workspace id for 404). POST is not retried by azure-core by default, so
every call marks it retryable: these queries only read. At most `max_concurrency` (<= 5, the service's
per-user limit) queries are in flight per workspace in this process.

Speed. The response is streamed to DuckDB, not parsed cell by cell by the SDK (about 25x faster; `arrow`
says how, BENCHMARKS.md "Ingest" has the measurements).

Endpoints. A loopback endpoint (a local stand-in) is used over http without any credential; any other
endpoint must be https and always authenticates (DefaultAzureCredential unless one is given).

Modules:
    source   LogAnalyticsSource: validation, clients, and the count / cut / halve loop of a window
    query    one query against a workspace, within its concurrency slots, into checked Arrow rows
    arrow    the streamed response body -> typed Arrow columns (DuckDB), clean rows and rejects
    kql      the KQL files beside it (package data), bound to a table and a window
    client   azure-core client arguments, credentials, retry logging, per-workspace slots
    errors   the errors this source raises

This package re-exports the names other code imports, so `chargeback_pipeline.sources.log_analytics`
stays the one import path (and the name of the logger every module of the package writes to).
"""

from chargeback_pipeline.sources.log_analytics.arrow import TIME_COLUMN, concat_fetched, split_checked
from chargeback_pipeline.sources.log_analytics.client import (
    DEFAULT_LOGS_ENDPOINT,
    LOGGER,
    MAX_WORKSPACE_CONCURRENCY,
    RETRIED_STATUSES,
    RETRYABLE_METHODS,
    azure_client_arguments,
    is_loopback,
    metrics_audience,
    workspace_slots,
)
from chargeback_pipeline.sources.log_analytics.errors import (
    IncompleteWindowError,
    LogAnalyticsQueryError,
    PermanentQueryError,
    TransientQueryError,
    UnexpectedAnswerError,
)
from chargeback_pipeline.sources.log_analytics.kql import KQL_DIR, TableQuery, kql_datetime, validated_table_name
from chargeback_pipeline.sources.log_analytics.query import COUNT_SCHEMA
from chargeback_pipeline.sources.log_analytics.source import (
    MAX_SERVER_TIMEOUT_SECONDS,
    READ_TIMEOUT_MARGIN_SECONDS,
    LogAnalyticsSource,
    partial_reason,
    split_evenly,
)

__all__ = [
    "COUNT_SCHEMA",
    "DEFAULT_LOGS_ENDPOINT",
    "KQL_DIR",
    "LOGGER",
    "MAX_SERVER_TIMEOUT_SECONDS",
    "MAX_WORKSPACE_CONCURRENCY",
    "READ_TIMEOUT_MARGIN_SECONDS",
    "RETRIED_STATUSES",
    "RETRYABLE_METHODS",
    "TIME_COLUMN",
    "IncompleteWindowError",
    "LogAnalyticsQueryError",
    "LogAnalyticsSource",
    "PermanentQueryError",
    "TableQuery",
    "TransientQueryError",
    "UnexpectedAnswerError",
    "azure_client_arguments",
    "concat_fetched",
    "is_loopback",
    "kql_datetime",
    "metrics_audience",
    "partial_reason",
    "split_checked",
    "split_evenly",
    "validated_table_name",
    "workspace_slots",
]
