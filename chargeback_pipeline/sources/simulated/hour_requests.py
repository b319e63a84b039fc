"""The shape of one generated hour: every request as an entry of numpy arrays, one array per attribute.

Both the emitted log rows and the ground truth are derived from these arrays, never from each other.
"""

from dataclasses import dataclass

import numpy as np

from chargeback_pipeline.sources.simulated.deployments import DEPLOYMENT_BACKEND

MAX_CHUNKS = 4


@dataclass(frozen=True)
class HourRequests:
    """Every request generated for one hour, one entry per request, sorted by gateway time.

    Orphans are requests whose gateway row does not exist (only their LLM record is logged). Token
    columns hold the request's SequenceNumber-0 values and are 0 when it has no LLM record.
    """

    gateway_time_us: np.ndarray  # int64 epoch microseconds, within the hour
    llm_time_us: np.ndarray  # int64, time of the SequenceNumber-0 LLM record
    is_orphan: np.ndarray
    is_success: np.ndarray
    has_llm_record: np.ndarray
    subscription: np.ndarray  # global subscription code (catalog)
    workload: np.ndarray
    deployment: np.ndarray  # serving deployment (also decides the gateway BackendId)
    is_spillover: np.ndarray  # a PTU-model request served by the pay-as-you-go backend
    prompt_tokens: np.ndarray  # int64
    completion_tokens: np.ndarray  # int64
    response_code: np.ndarray  # int32
    total_time_ms: np.ndarray  # int64
    backend_time_ms: np.ndarray  # int64
    cache: np.ndarray
    api_version: np.ndarray
    is_stream: np.ndarray
    chunk_count: np.ndarray  # LLM records per request (1 unless chunked)
    correlation_bytes: np.ndarray  # (n, 16) uint8, GUID v4 bits set
    request_id_bytes: np.ndarray  # (n, 16) uint8
    gateway_row_duplicated: np.ndarray  # bool per request
    llm_record_duplicated: np.ndarray  # bool (n, MAX_CHUNKS), per (request, SequenceNumber)
    chunk_carries_tokens: np.ndarray  # bool (n, MAX_CHUNKS), the nonzero-chunk-token fault
    ptu_minute_utilisation: np.ndarray  # int64 (PTU deployments, 60): Azure's utilisation % per minute

    @property
    def has_gateway_row(self) -> np.ndarray:
        return ~self.is_orphan

    @property
    def is_non_llm(self) -> np.ndarray:
        return self.is_success & ~self.has_llm_record

    @property
    def backend(self) -> np.ndarray:
        return DEPLOYMENT_BACKEND[self.deployment]

    @property
    def llm_records(self) -> np.ndarray:
        """Bool (n, MAX_CHUNKS): which (request, SequenceNumber) LLM records exist."""
        sequence = np.arange(MAX_CHUNKS)
        return self.has_llm_record[:, None] & (sequence[None, :] < self.chunk_count[:, None])
