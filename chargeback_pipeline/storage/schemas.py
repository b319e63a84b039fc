"""Arrow schemas of the landed raw tables: the contract between every source and the lake.

Column names are Log Analytics' own, so a folder export, the simulator and the Log Analytics API all
land the same shape. Payload and header columns (RequestBody, ResponseBody, *Headers, TraceRecords,
RequestMessages, ResponseMessages) are deliberately absent: they are never pulled or stored.
CallerIpAddress is absent too: it is personal data that chargeback does not need.
"""

import pyarrow as pa

UTC_TIMESTAMP = pa.timestamp("us", tz="UTC")
# Money in the published files: exact decimals (Parquet); CSV prints it at the currency's minor unit.
MONEY = pa.decimal128(18, 6)
# A `month` column of the published files: `2026-11` (core/periods.month_text), as in `monthly/month=2026-11`.
MONTH = pa.string()

GATEWAY_LOG_SCHEMA = pa.schema(
    [
        ("TimeGenerated", UTC_TIMESTAMP),
        ("CorrelationId", pa.string()),
        ("IsRequestSuccess", pa.bool_()),
        ("ProductId", pa.string()),
        ("ApimSubscriptionId", pa.string()),
        ("UserId", pa.string()),
        ("ApiId", pa.string()),
        ("OperationId", pa.string()),
        ("BackendId", pa.string()),
        ("Region", pa.string()),
        ("Cache", pa.string()),
        ("ResponseCode", pa.int32()),
        ("BackendResponseCode", pa.int32()),
        ("TotalTime", pa.int64()),
        ("BackendTime", pa.int64()),
    ]
)

# The gateway rows when the caller's identity is configured (sources/callers.py): one more column, the
# named trace-record or header value only. Without it the landed rows are GATEWAY_LOG_SCHEMA, unchanged.
CALLER_COLUMN = "CallerId"
CALLER_ID = "caller_id"  # the same, from the attributed requests on (core/callers.py)
UNKNOWN_CALLER = "unknown"  # caller_id of a request no configured key or header named
UNASSIGNED_PRODUCT = "unassigned"  # product_id of a request without an APIM product (stg_apim__gateway_requests)
GATEWAY_CALLER_LOG_SCHEMA = GATEWAY_LOG_SCHEMA.append(pa.field(CALLER_COLUMN, pa.string()))


def gateway_log_schema(with_caller: bool) -> pa.Schema:
    return GATEWAY_CALLER_LOG_SCHEMA if with_caller else GATEWAY_LOG_SCHEMA


LLM_LOG_SCHEMA = pa.schema(
    [
        ("TimeGenerated", UTC_TIMESTAMP),
        ("CorrelationId", pa.string()),
        ("RequestId", pa.string()),
        ("DeploymentName", pa.string()),
        ("ModelName", pa.string()),
        ("OperationName", pa.string()),
        ("ApiVersion", pa.string()),
        ("Region", pa.string()),
        ("PromptTokens", pa.int64()),
        ("CompletionTokens", pa.int64()),
        ("TotalTokens", pa.int64()),
        ("SequenceNumber", pa.int32()),
        ("IsStreamCompletion", pa.bool_()),
    ]
)

# Azure Monitor platform metrics of the Azure OpenAI resources, one row per
# (hour, resource, deployment, metric); Total is the metric's hourly "Total" aggregation.
DEPLOYMENT_METRICS_SCHEMA = pa.schema(
    [
        ("TimeStamp", UTC_TIMESTAMP),
        ("ResourceId", pa.string()),
        ("ModelDeploymentName", pa.string()),
        ("MetricName", pa.string()),
        ("Total", pa.int64()),
    ]
)

# The published per-product usage report (`daily/usage_date=.../product_usage.*`): a contract other
# tools read. The daily rollup's SQL produces exactly this; the simulator's ground truth uses it too.
PRODUCT_USAGE_SCHEMA = pa.schema(
    [
        ("usage_date", pa.date32()),
        ("product_id", pa.string()),
        ("subscription_id", pa.string()),
        ("model_name", pa.string()),
        ("deployment_name", pa.string()),
        ("backend_id", pa.string()),
        ("prompt_tokens", pa.int64()),
        ("completion_tokens", pa.int64()),
        ("total_tokens", pa.int64()),
        ("calls", pa.int64()),
        ("failed_calls", pa.int64()),
        ("first_seen", UTC_TIMESTAMP),
        ("last_seen", UTC_TIMESTAMP),
    ]
)

METRIC_PROMPT_TOKENS = "ProcessedPromptTokens"
METRIC_COMPLETION_TOKENS = "GeneratedTokens"
RECONCILED_METRICS = (METRIC_PROMPT_TOKENS, METRIC_COMPLETION_TOKENS)
# A PTU deployment's own utilisation (Azure Monitor, per ModelDeploymentName). It is a percentage, not a
# count: its row's Total holds the hour's Maximum, in whole percent (100 = saturated at some point).
# Reconciliation reads only RECONCILED_METRICS, so these rows never change its sums.
METRIC_PTU_UTILIZATION = "AzureOpenAIProvisionedManagedUtilizationV2"

GATEWAY_COLUMNS = tuple(GATEWAY_LOG_SCHEMA.names)
LLM_COLUMNS = tuple(LLM_LOG_SCHEMA.names)

# Rows a source could not turn into the schemas above (unparseable time, non-integer tokens...).
# They are landed beside the good rows of the same hour, never dropped: `record` is the original
# row (JSON text) with payload/header columns removed, `reason` says what was wrong with it, and
# `placed_at` is the time the source filed it under (its own time if valid, else e.g. its file's
# earliest valid time), so that windows that overlap report each rejected row in one hour only.
SOURCE_REJECT_SCHEMA = pa.schema(
    [
        ("source_table", pa.string()),
        ("reason", pa.string()),
        ("origin", pa.string()),
        ("record", pa.string()),
        ("placed_at", UTC_TIMESTAMP),
    ]
)
