"""The log rows an hour of requests emits: gateway rows and LLM records, duplicates and chunks included.

Rows are built on first use and kept with their TimeGenerated as numpy, so a window can cut an hour
without looking into the Arrow table.
"""

from functools import cached_property
from typing import NamedTuple

import numpy as np
import pyarrow as pa

from chargeback_pipeline.sources.simulated.arrays import hex_strings, labels, timestamps
from chargeback_pipeline.sources.simulated.catalog import Catalog
from chargeback_pipeline.sources.simulated.deployments import (
    BACKEND_ID_LABELS,
    DEPLOYMENT_NAME_LABELS,
    MODEL_NAME_LABELS,
    REGION,
)
from chargeback_pipeline.sources.simulated.hour_requests import HourRequests
from chargeback_pipeline.sources.simulated.traffic import API_VERSIONS, CACHE_VALUES
from chargeback_pipeline.sources.simulated.workloads import (
    API_ID,
    GATEWAY_OPERATION_LABELS,
    LLM_OPERATION_LABELS,
    NON_LLM_OPERATION,
    WORKLOAD_GATEWAY_OPERATION,
)
from chargeback_pipeline.storage.schemas import GATEWAY_LOG_SCHEMA, LLM_LOG_SCHEMA

_CHUNK_SPACING_US = 1000
_CACHE_LABELS = labels(CACHE_VALUES)
_API_VERSION_LABELS = labels(API_VERSIONS)


class Rows(NamedTuple):
    table: pa.Table
    time_us: np.ndarray  # TimeGenerated of every row, for cheap window filtering

    def within(self, start_us: int, end_us: int) -> pa.Table:
        inside = (self.time_us >= start_us) & (self.time_us < end_us)
        return self.table if inside.all() else self.table.filter(pa.array(inside))


def _gateway_rows(requests: HourRequests, catalog: Catalog) -> Rows:
    logged = np.flatnonzero(requests.has_gateway_row)
    rows = np.repeat(logged, 1 + requests.gateway_row_duplicated[logged])  # a duplicate sits beside its twin
    subscription = requests.subscription[rows]
    operation = np.where(
        requests.is_non_llm[rows], NON_LLM_OPERATION, WORKLOAD_GATEWAY_OPERATION[requests.workload[rows]]
    )
    response_code = requests.response_code[rows]
    time_us = requests.gateway_time_us[rows]
    count = len(rows)
    columns = [
        timestamps(time_us),
        hex_strings(requests.correlation_bytes[rows], guid=True),
        pa.array(requests.is_success[rows]),
        catalog.product_id_labels.take(catalog.subscription_product[subscription]),
        catalog.subscription_id_labels.take(subscription),
        catalog.user_id_labels.take(subscription),
        pa.repeat(API_ID, count),
        GATEWAY_OPERATION_LABELS.take(operation),
        BACKEND_ID_LABELS.take(requests.backend[rows]),
        pa.repeat(REGION, count),
        _CACHE_LABELS.take(requests.cache[rows]),
        pa.array(response_code),
        pa.array(response_code),  # BackendResponseCode: every simulated call reaches its backend
        pa.array(requests.total_time_ms[rows]),
        pa.array(requests.backend_time_ms[rows]),
    ]
    return Rows(pa.Table.from_arrays(columns, schema=GATEWAY_LOG_SCHEMA), time_us)


def _llm_rows(requests: HourRequests) -> Rows:
    record_request, sequence = np.nonzero(requests.llm_records)  # request-major, SequenceNumber ascending
    copies = 1 + requests.llm_record_duplicated[record_request, sequence]
    record_request = np.repeat(record_request, copies)
    sequence = np.repeat(sequence, copies)

    # Tokens sit on SequenceNumber 0; the fault knob makes some later chunks repeat them.
    carries_tokens = (sequence == 0) | requests.chunk_carries_tokens[record_request, sequence]
    prompt_tokens = np.where(carries_tokens, requests.prompt_tokens[record_request], 0)
    completion_tokens = np.where(carries_tokens, requests.completion_tokens[record_request], 0)
    deployment = requests.deployment[record_request]
    time_us = requests.llm_time_us[record_request] + sequence * _CHUNK_SPACING_US
    count = len(record_request)
    columns = [
        timestamps(time_us),
        hex_strings(requests.correlation_bytes[record_request], guid=True),
        hex_strings(requests.request_id_bytes[record_request], guid=False),
        DEPLOYMENT_NAME_LABELS.take(deployment),
        MODEL_NAME_LABELS.take(deployment),
        LLM_OPERATION_LABELS.take(requests.workload[record_request]),
        _API_VERSION_LABELS.take(requests.api_version[record_request]),
        pa.repeat(REGION, count),
        pa.array(prompt_tokens),
        pa.array(completion_tokens),
        pa.array(prompt_tokens + completion_tokens),
        pa.array(sequence.astype(np.int32)),
        pa.array(requests.is_stream[record_request]),
    ]
    return Rows(pa.Table.from_arrays(columns, schema=LLM_LOG_SCHEMA), time_us)


class GeneratedHour:
    """An hour's requests, with its log rows built on first use (ground truth needs only the arrays)."""

    def __init__(self, requests: HourRequests, catalog: Catalog):
        self.requests = requests
        self._catalog = catalog

    @cached_property
    def gateway_rows(self) -> Rows:
        return _gateway_rows(self.requests, self._catalog)

    @cached_property
    def llm_rows(self) -> Rows:
        return _llm_rows(self.requests)
