"""The answers a pipeline over the simulated logs must reach, computed from the generated requests.

Nothing here reads the emitted log rows: the answers come from the same request arrays the rows are
derived from, so they are an independent check of the pipeline rather than a replay of it.
"""

from datetime import UTC, date, datetime, time, timedelta

import numpy as np
import pyarrow as pa

from chargeback_pipeline.sources.simulated.arrays import timestamps
from chargeback_pipeline.sources.simulated.catalog import Catalog
from chargeback_pipeline.sources.simulated.deployments import (
    BACKEND_ID_LABELS,
    DEPLOYMENT_BACKEND_ID_LABELS,
    DEPLOYMENT_LIST,
    DEPLOYMENT_NAME_LABELS,
    DEPLOYMENT_NAME_SHARED,
    REPORT_DEPLOYMENT_LABELS,
    REPORT_MODEL_LABELS,
    RESOURCE_ID_LABELS,
)
from chargeback_pipeline.sources.simulated.hour_requests import HourRequests
from chargeback_pipeline.sources.simulated.hours import EPOCH, US_PER_HOUR, epoch_us, hours_overlapping
from chargeback_pipeline.sources.simulated.metrics import (
    RequestsOf,
    bypass_tokens,
    llm_records_in_hour,
    logged_llm_tokens,
    tokens_by_deployment,
)
from chargeback_pipeline.sources.simulated.profile import SimulationProfile
from chargeback_pipeline.sources.simulated.usage_groups import UsageGroups
from chargeback_pipeline.storage.schemas import PRODUCT_USAGE_SCHEMA

# The ground truth has the published report's exact schema (defined once, in schemas.py).
EXPECTED_DAILY_USAGE_SCHEMA = PRODUCT_USAGE_SCHEMA
DAILY_USAGE_KEY = (
    "usage_date",
    "product_id",
    "subscription_id",
    "model_name",
    "deployment_name",
    "backend_id",
)

# One row per simulated deployment, keyed by (backend_id, deployment_name): names repeat across resources.
EXPECTED_BYPASS_SCHEMA = pa.schema(
    [
        ("backend_id", pa.string()),
        ("deployment_name", pa.string()),
        ("resource_id", pa.string()),
        ("prompt_tokens", pa.int64()),
        ("completion_tokens", pa.int64()),
    ]
)
EXPECTED_UNATTRIBUTED_SCHEMA = pa.schema(
    [
        ("backend_id", pa.string()),
        ("deployment_name", pa.string()),
        ("prompt_tokens", pa.int64()),
        ("completion_tokens", pa.int64()),
    ]
)
_DEPLOYMENT_KEY = [("backend_id", "ascending"), ("deployment_name", "ascending")]


def daily_usage(day: date, catalog: Catalog, requests_of: RequestsOf) -> pa.Table:
    """The usage report of one UTC day (see SimulatedSource.expected_daily_usage), sorted by the key."""
    day_start_us = epoch_us(datetime.combine(day, time(), tzinfo=UTC))
    # Aggregate hour by hour and merge the small partials: a 10M-request day never sits in memory.
    hourly = [
        UsageGroups.of_requests(requests_of(hour_us))
        for hour_us in hours_overlapping(day_start_us, day_start_us + 24 * US_PER_HOUR)
    ]
    usage = UsageGroups.merge(hourly)
    subscription, report_deployment, backend = usage.key_parts()
    columns = [
        pa.array(np.full(len(usage.group), day), type=pa.date32()),
        catalog.report_product_labels.take(catalog.subscription_product[subscription]),
        catalog.report_subscription_labels.take(subscription),
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
    table = pa.Table.from_arrays(columns, schema=EXPECTED_DAILY_USAGE_SCHEMA)
    return table.sort_by([(key, "ascending") for key in DAILY_USAGE_KEY])


def hourly_request_counts(hour_us: int, requests: HourRequests, catalog: Catalog, gateway_rows_missing: bool) -> dict:
    """Counts of the requests generated for one hour (see SimulatedSource.expected_hourly_requests)."""
    gateway = requests.has_gateway_row
    billable = gateway & requests.is_success & requests.has_llm_record
    failed = gateway & ~requests.is_success
    duplicated_gateway = gateway & requests.gateway_row_duplicated
    records = requests.llm_records
    duplicated_records = records & requests.llm_record_duplicated
    llm_of_gateway = gateway & requests.has_llm_record
    unassigned = catalog.unassigned_subscription
    prompt_tokens = int(requests.prompt_tokens[billable].sum())
    completion_tokens = int(requests.completion_tokens[billable].sum())
    return {
        "hour": EPOCH + timedelta(microseconds=hour_us),
        "gateway_rows_missing": gateway_rows_missing,
        "gateway_requests": int(gateway.sum()),
        "gateway_rows": int(gateway.sum() + duplicated_gateway.sum()),
        "duplicate_gateway_rows": int(duplicated_gateway.sum()),
        "billable_calls": int(billable.sum()),
        "failed_calls": int(failed.sum()),
        "failed_calls_with_llm_record": int((failed & requests.has_llm_record).sum()),
        "non_llm_calls": int((gateway & requests.is_non_llm).sum()),
        "unassigned_calls": int((gateway & (requests.subscription == unassigned)).sum()),
        "spillover_calls": int((gateway & requests.is_spillover).sum()),
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
        "llm_requests": int(requests.has_llm_record.sum()),
        "llm_rows": int(records.sum() + duplicated_records.sum()),
        "duplicate_llm_rows": int(duplicated_records.sum()),
        "chunked_llm_requests": int((requests.has_llm_record & (requests.chunk_count > 1)).sum()),
        "orphan_llm_requests": int(requests.is_orphan.sum()),
        "llm_records_before_hour": int((llm_of_gateway & (requests.llm_time_us < hour_us)).sum()),
        "llm_records_after_hour": int((llm_of_gateway & (requests.llm_time_us >= hour_us + US_PER_HOUR)).sum()),
        "nonzero_token_chunk_records": int((records & requests.chunk_carries_tokens)[:, 1:].sum()),
    }


def bypass_tokens_by_deployment(profile: SimulationProfile, hours: range, requests_of: RequestsOf) -> pa.Table:
    """Per resource and deployment: the bypass tokens inside the deployment metrics of these hours (one
    row per simulated deployment, zeros included), sorted by (backend_id, deployment_name)."""
    bypass = np.zeros((2, len(DEPLOYMENT_LIST)), dtype=np.int64)
    for hour_us in hours:
        bypass += bypass_tokens(profile, hour_us, logged_llm_tokens(hour_us, requests_of))
    columns = [
        DEPLOYMENT_BACKEND_ID_LABELS,
        DEPLOYMENT_NAME_LABELS,
        RESOURCE_ID_LABELS,
        pa.array(bypass[0]),
        pa.array(bypass[1]),
    ]
    return pa.Table.from_arrays(columns, schema=EXPECTED_BYPASS_SCHEMA).sort_by(_DEPLOYMENT_KEY)


def unattributed_tokens_by_deployment(
    profile: SimulationProfile, hours: range, requests_of: RequestsOf, missing_gateway_hours_us: set[int]
) -> pa.Table:
    """Per resource and deployment: the unattributed tokens a pipeline must report for these hours (see
    SimulatedSource.expected_unattributed_tokens), one row per simulated deployment, zeros included."""
    unattributed = np.zeros((2, len(DEPLOYMENT_LIST)), dtype=np.int64)
    for hour_us in hours:
        logged = np.zeros_like(unattributed)
        placed = np.zeros_like(unattributed)
        for generated_hour_us, requests, in_hour in llm_records_in_hour(hour_us, requests_of):
            # The record's request has a gateway row, which the pipeline lands with the hour (the hour plus
            # the join margin, wider than any record's distance from its request), unless that row's hour
            # was lost: its backend is known.
            backend_known = (
                requests.has_gateway_row
                if generated_hour_us not in missing_gateway_hours_us
                else np.zeros_like(in_hour)
            )
            # Otherwise only a deployment name served by one backend says where the record belongs.
            placeable = backend_known | ~DEPLOYMENT_NAME_SHARED[requests.deployment]
            logged += tokens_by_deployment(requests, in_hour)
            placed += tokens_by_deployment(requests, in_hour & placeable)
        metric = logged + bypass_tokens(profile, hour_us, logged)
        unattributed += np.maximum(metric - placed, 0)
    columns = [
        DEPLOYMENT_BACKEND_ID_LABELS,
        DEPLOYMENT_NAME_LABELS,
        pa.array(unattributed[0]),
        pa.array(unattributed[1]),
    ]
    return pa.Table.from_arrays(columns, schema=EXPECTED_UNATTRIBUTED_SCHEMA).sort_by(_DEPLOYMENT_KEY)
