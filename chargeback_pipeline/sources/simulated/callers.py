"""Who called, below the subscription: the caller identity a `trace` policy writes for some traffic.

Calls to the Entra-only APIs (no subscription key: empty ProductId and ApimSubscriptionId, the catalog's
unassigned calls) always carry the calling application's id, the token's `appid` claim; a share of the
product traffic carries the client application too (several teams sharing a product). The rest names
no caller. Which caller a request has is drawn from the last two bytes of its CorrelationId (random,
and free of the GUID version and variant bits), so it takes no draw from the hour's RNG: the traffic,
its rows and every other answer are the same with or without callers.

A request's caller is computed twice, the same way: from the request arrays for the ground truth
(`caller_daily_usage`) and from its emitted gateway row for the source (`caller_column`), as the
caller's trace record is part of that row. `trace_records` writes the records themselves, as Log
Analytics holds them, for the workspace stand-in.
"""

import json
from datetime import UTC, date, datetime, time

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from chargeback_pipeline.sources.simulated.arrays import labels, timestamps
from chargeback_pipeline.sources.simulated.catalog import Catalog
from chargeback_pipeline.sources.simulated.deployments import (
    BACKEND_ID_LABELS,
    REPORT_DEPLOYMENT_LABELS,
    REPORT_MODEL_LABELS,
)
from chargeback_pipeline.sources.simulated.hours import US_PER_HOUR, epoch_us, hours_overlapping
from chargeback_pipeline.sources.simulated.metrics import RequestsOf
from chargeback_pipeline.sources.simulated.usage_groups import UsageGroups
from chargeback_pipeline.storage.schemas import CALLER_COLUMN, CALLER_ID, PRODUCT_USAGE_SCHEMA, UNKNOWN_CALLER

# Entra application (client) ids of the apps calling the Entra-only APIs, and client names of the teams
# sharing products: the values the trace policy writes.
ENTRA_APPS = (
    "0b5c6f1e-2d4a-4c59-9e21-7a3f8d6b1c01",
    "5e8a2b7d-91c3-4f06-b8d2-3c6e0a9f4e02",
    "c3d9e0f4-6a1b-47e2-a5c8-9b2d7e1f6a03",
)
PRODUCT_APPS = ("team-search", "team-support", "batch-eval")
CALLER_VALUES = (*ENTRA_APPS, *PRODUCT_APPS)
TRACED_PRODUCT_SHARE = 0.5  # of the product traffic whose trace record names the client
NO_CALLER = len(CALLER_VALUES)  # the code of a request that names no caller
CALLER_LABELS = labels([*CALLER_VALUES, UNKNOWN_CALLER])
OTHER_KEY = "backend-pool"  # a record every simulated request carries, naming no caller
# In that record's message and value: trace content that is not a caller's and must never be pulled.
NOT_A_CALLER = "sk-live-0d9f-not-a-caller"
TRACE_KEY = "appid"  # the metadata name the simulated policy writes (configure CHARGEBACK_CALLER_TRACE_KEYS=appid)

EXPECTED_CALLER_USAGE_SCHEMA = PRODUCT_USAGE_SCHEMA.insert(3, pa.field(CALLER_ID, pa.string()))
CALLER_USAGE_KEY = ("usage_date", "product_id", "subscription_id", "model_name", "deployment_name", "backend_id")


def caller_codes(last_bytes: np.ndarray, unassigned: np.ndarray) -> np.ndarray:
    """Per request, its caller's code (NO_CALLER: none), from its CorrelationId's last two bytes and
    whether it was an unassigned (Entra-only) call."""
    pick, draw = last_bytes[:, 0].astype(np.int64), last_bytes[:, 1].astype(np.int64)
    entra = pick % len(ENTRA_APPS)
    product = np.where(draw < TRACED_PRODUCT_SHARE * 256, len(ENTRA_APPS) + pick % len(PRODUCT_APPS), NO_CALLER)
    return np.where(unassigned, entra, product)


_HEX_VALUE = np.zeros(256, dtype=np.int64)
_HEX_VALUE[np.frombuffer(b"0123456789abcdef", dtype=np.uint8)] = np.arange(16)
_EXTRACTED = pa.array([*CALLER_VALUES, None], pa.string())  # by code: what the source lands as CallerId


def caller_column(gateway: pa.Table, traced: bool) -> pa.Array:
    """CallerId of emitted gateway rows, as the source extracts it (null: no caller named). `traced`:
    whether the configured keys include the one the simulated policy writes (TRACE_KEY)."""
    if not traced:
        return pa.nulls(gateway.num_rows, pa.string())
    # The simulator's CorrelationIds are GUIDs: their last four characters are the last two bytes in hex.
    tail = pc.utf8_slice_codeunits(gateway["CorrelationId"].combine_chunks(), -4)
    digits = _HEX_VALUE[np.frombuffer(tail.buffers()[2], dtype=np.uint8, count=4 * len(tail), offset=tail.offset * 4)]
    digits = digits.reshape(-1, 4)
    last_bytes = np.stack([digits[:, 0] * 16 + digits[:, 1], digits[:, 2] * 16 + digits[:, 3]], axis=1)
    unassigned = pc.equal(gateway["ProductId"], "").to_numpy(zero_copy_only=False)
    return _EXTRACTED.take(pa.array(caller_codes(last_bytes, unassigned)))


def trace_record_key_counts(gateway: pa.Table) -> dict[str, int]:
    """Per metadata name of the records `trace_records` writes for these rows: how many records carry it."""
    named = gateway.num_rows - caller_column(gateway, traced=True).null_count
    return {key: count for key, count in ((OTHER_KEY, gateway.num_rows), (TRACE_KEY, named)) if count}


def trace_records(gateway_with_callers: pa.Table) -> pa.Table:
    """The gateway rows as Log Analytics holds them: CallerId replaced by TraceRecords (the caller's
    record under TRACE_KEY, beside a record every request carries whose content must never be pulled)."""
    other = {
        "source": "set-backend-service",
        "severity": "Information",
        "message": f"backend pool selected for subscription key {NOT_A_CALLER}",
        "metadata": [{"name": OTHER_KEY, "value": f"aoai-pool {NOT_A_CALLER}"}],
    }
    records = []
    for caller in gateway_with_callers[CALLER_COLUMN].to_pylist():
        mine = [other]
        if caller is not None:
            claim = {"name": TRACE_KEY, "value": caller}
            mine.append(
                {
                    "source": "validate-azure-ad-token",
                    "severity": "Information",
                    "message": "caller",
                    "metadata": [claim],
                }
            )
        records.append(json.dumps(mine))
    index = gateway_with_callers.schema.get_field_index(CALLER_COLUMN)
    return gateway_with_callers.remove_column(index).append_column("TraceRecords", pa.array(records, pa.string()))


def caller_daily_usage(day: date, catalog: Catalog, requests_of: RequestsOf, traced: bool) -> pa.Table:
    """The usage report of one UTC day per product and caller (ground_truth.daily_usage, split by caller),
    computed from the generated requests, sorted by the report key then the caller. Not `traced` (the
    configured keys miss TRACE_KEY): every caller is unknown."""
    day_start_us = epoch_us(datetime.combine(day, time(), tzinfo=UTC))
    hourly = []
    for hour_us in hours_overlapping(day_start_us, day_start_us + 24 * US_PER_HOUR):
        requests = requests_of(hour_us)
        unassigned = requests.subscription == catalog.unassigned_subscription
        codes = caller_codes(requests.correlation_bytes[:, 14:16], unassigned)
        codes = codes if traced else np.full_like(codes, NO_CALLER)
        hourly.append(UsageGroups.of_requests(requests, extra=codes, extra_codes=NO_CALLER + 1))
    usage = UsageGroups.merge(hourly)
    rest, caller = np.divmod(usage.group, NO_CALLER + 1)
    subscription, report_deployment, backend = usage._replace(group=rest).key_parts()
    columns = [
        pa.array(np.full(len(usage.group), day), type=pa.date32()),
        catalog.report_product_labels.take(catalog.subscription_product[subscription]),
        catalog.report_subscription_labels.take(subscription),
        CALLER_LABELS.take(caller),
        REPORT_MODEL_LABELS.take(report_deployment),
        REPORT_DEPLOYMENT_LABELS.take(report_deployment),
        BACKEND_ID_LABELS.take(backend),
        pa.array(usage.prompt_tokens),
        pa.array(usage.completion_tokens),
        pa.array(usage.prompt_tokens + usage.completion_tokens),
        pa.array(usage.calls),
        pa.array(usage.failed_calls),
        timestamps(usage.first_seen_us),
        timestamps(usage.last_seen_us),
    ]
    table = pa.Table.from_arrays(columns, schema=EXPECTED_CALLER_USAGE_SCHEMA)
    return table.sort_by([(key, "ascending") for key in (*CALLER_USAGE_KEY, CALLER_ID)])
