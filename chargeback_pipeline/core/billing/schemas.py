"""The tables of the money engine: its two inputs, the daily chargeback lines, and the names they use.

Money is exact decimal (never binary floats), always a whole number of the currency's minor unit.
"""

from enum import StrEnum

import pyarrow as pa

from chargeback_pipeline.storage.schemas import CALLER_ID, MONEY, UTC_TIMESTAMP

UNATTRIBUTED_PRODUCT = "unattributed"  # tokens in the deployment metrics that no APIM log accounts for
PLATFORM_UNALLOCATED_PRODUCT = "platform-unallocated"  # PTU capacity nobody is charged for
# Tokens APIM logged that no product is billed for (failed requests, records without a gateway row):
# charged on pay-as-you-go resources, where Azure invoices them.
LOGGED_NOT_BILLABLE_PRODUCT = "logged-not-billable"
RESERVED_PRODUCTS = frozenset({UNATTRIBUTED_PRODUCT, PLATFORM_UNALLOCATED_PRODUCT, LOGGED_NOT_BILLABLE_PRODUCT})


class CostType(StrEnum):
    ptu = "ptu"  # share of a PTU deployment's hours, by weighted tokens
    ptu_unused = "ptu_unused"  # unused PTU capacity: the platform line, or a fixed share
    paygo = "paygo"  # pay-as-you-go tokens, priced directly


QUANTITY = pa.decimal128(38, 6)

# Input 1: billable APIM requests, one row per group and hour.
HOURLY_USAGE_SCHEMA = pa.schema(
    [
        ("usage_hour", UTC_TIMESTAMP),
        ("product_id", pa.string()),
        ("subscription_id", pa.string()),
        ("model_name", pa.string()),
        ("deployment_name", pa.string()),
        ("backend_id", pa.string()),
        ("prompt_tokens", pa.int64()),
        ("completion_tokens", pa.int64()),
        ("calls", pa.int64()),
    ]
)
# Optional usage column, read when pricing.cached_tokens is `deduct` (no source fills it today).
CACHED_PROMPT_TOKENS = "cached_prompt_tokens"
# Optional usage column CALLER_ID: who called (core/callers.py), present only when the day was attributed
# with caller keys; then every chargeback line and origin share carries it too (null on its own lines).

# Input 2: tokens the deployment metrics count and the APIM logs do not, per deployment-hour.
UNATTRIBUTED_SCHEMA = pa.schema(
    [
        ("usage_hour", UTC_TIMESTAMP),
        ("deployment_name", pa.string()),
        ("prompt_tokens", pa.int64()),
        ("completion_tokens", pa.int64()),
    ]
)
# Optional unattributed column; needed only when one deployment name exists on several backends.
BACKEND_ID = "backend_id"

# Input 3 (optional): per backend and deployment, the day's logged tokens no product is billed for.
NOT_BILLABLE_SCHEMA = pa.schema(
    [
        ("usage_date", pa.date32()),
        ("backend_id", pa.string()),
        ("deployment_name", pa.string()),
        ("prompt_tokens", pa.int64()),
        ("completion_tokens", pa.int64()),
    ]
)

# Output: the chargeback lines of a day.
DAILY_CHARGEBACK_SCHEMA = pa.schema(
    [
        ("usage_date", pa.date32()),
        ("product_id", pa.string()),
        ("subscription_id", pa.string()),  # null on unattributed and unused-capacity lines
        ("model_name", pa.string()),
        ("deployment_name", pa.string()),
        ("backend_id", pa.string()),
        ("cost_type", pa.string()),  # a CostType value
        ("calls", pa.int64()),
        ("prompt_tokens", pa.int64()),
        ("completion_tokens", pa.int64()),
        ("total_tokens", pa.int64()),
        ("weighted_tokens", QUANTITY),  # null where the model's output weight is unknown (paygo only)
        ("output_token_weight", QUANTITY),
        ("ptu_cost", MONEY),
        ("paygo_cost", MONEY),
        ("total_cost", MONEY),
        ("currency", pa.string()),
        ("rate_effective_from", pa.date32()),  # the PTU rate or token prices the day was priced with
    ]
)


def with_caller_column(schema: pa.Schema) -> pa.Schema:
    """`schema` with caller_id after subscription_id: the chargeback's tables when callers are known."""
    return schema.insert(schema.get_field_index("subscription_id") + 1, pa.field(CALLER_ID, pa.string()))


DAILY_CHARGEBACK_CALLER_SCHEMA = with_caller_column(DAILY_CHARGEBACK_SCHEMA)
