"""Simulated Azure API Management traffic: the pipeline's default source and the tests' ground truth.

Every hour is generated on its own from an RNG seeded with (profile seed, hour), so an hour always
yields the same rows whatever window asked for it. A generated hour is a set of *requests* held as numpy
arrays, one entry per request. The emitted log rows (duplicates, LLM chunks, orphans, missing gateway
rows) are derived from those arrays, and the ground truth is computed from the same arrays, never by
joining the emitted logs, so it is an independent answer the pipeline can be checked against.

All random draws of an hour happen in a fixed order and with sizes that do not depend on the fault
knobs: turning a knob (say `nonzero_chunk_token_fraction`) changes only what that knob governs.
"""

from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import cached_property
from types import MappingProxyType
from typing import Literal, NamedTuple

import numpy as np
import pyarrow as pa

from chargeback_pipeline.schemas import (
    DEPLOYMENT_METRICS_SCHEMA,
    GATEWAY_LOG_SCHEMA,
    LLM_LOG_SCHEMA,
    METRIC_COMPLETION_TOKENS,
    METRIC_PROMPT_TOKENS,
    UTC_TIMESTAMP,
)
from chargeback_pipeline.sources.base import Fetched, TimeWindow

HOUR = timedelta(hours=1)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US_PER_SECOND = 1_000_000
_US_PER_HOUR = 3600 * _US_PER_SECOND

REGION = "East US"
API_ID = "azure-openai"
NON_LLM_OPERATION_ID = "list-deployments"
UNASSIGNED = "unassigned"  # report label for an empty ProductId / ApimSubscriptionId
UNKNOWN = "unknown"  # report label for model / deployment of a request without an LLM record

PTU_BACKEND_ID = "aoai-ptu-eastus"
PAYGO_BACKEND_ID = "aoai-paygo-eastus"
_AZURE_SUBSCRIPTION_ID = "00000000-0000-0000-0000-000000000000"
_RESOURCE_GROUP = "rg-ai"


def account_resource_id(account_name: str) -> str:
    """ARM id of the (simulated) Azure OpenAI account behind a backend."""
    return (
        f"/subscriptions/{_AZURE_SUBSCRIPTION_ID}/resourceGroups/{_RESOURCE_GROUP}"
        f"/providers/Microsoft.CognitiveServices/accounts/{account_name}"
    )


@dataclass(frozen=True)
class SimulatedDeployment:
    name: str
    model_name: str
    backend_id: str  # APIM backend id; equal to the Azure OpenAI account name
    resource_id: str
    billing: Literal["ptu", "paygo"]


_DEPLOYMENT_LIST = (
    SimulatedDeployment("gpt-41-ptu", "gpt-4.1", PTU_BACKEND_ID, account_resource_id(PTU_BACKEND_ID), "ptu"),
    SimulatedDeployment("gpt-4o-ptu", "gpt-4o", PTU_BACKEND_ID, account_resource_id(PTU_BACKEND_ID), "ptu"),
    SimulatedDeployment("gpt-41-paygo", "gpt-4.1", PAYGO_BACKEND_ID, account_resource_id(PAYGO_BACKEND_ID), "paygo"),
    SimulatedDeployment("gpt-4o-paygo", "gpt-4o", PAYGO_BACKEND_ID, account_resource_id(PAYGO_BACKEND_ID), "paygo"),
    SimulatedDeployment(
        "embedding-large-paygo",
        "text-embedding-3-large",
        PAYGO_BACKEND_ID,
        account_resource_id(PAYGO_BACKEND_ID),
        "paygo",
    ),
)

# Deployment name -> what the simulator serves from it; the pricing file names these deployments.
SIMULATED_DEPLOYMENTS: Mapping[str, SimulatedDeployment] = MappingProxyType(
    {deployment.name: deployment for deployment in _DEPLOYMENT_LIST}
)
_DEPLOYMENT_INDEX = {deployment.name: index for index, deployment in enumerate(_DEPLOYMENT_LIST)}
_BACKEND_IDS = (PTU_BACKEND_ID, PAYGO_BACKEND_ID)
_DEPLOYMENT_BACKEND = np.array([_BACKEND_IDS.index(d.backend_id) for d in _DEPLOYMENT_LIST])


@dataclass(frozen=True)
class _Workload:
    """One kind of LLM call: which operation, which deployments serve it, how many tokens it takes."""

    operation_id: str  # gateway OperationId
    llm_operation_name: str  # LLM log OperationName
    ptu_deployment: str | None  # None: always served pay-as-you-go (no spillover involved)
    paygo_deployment: str
    prompt_median: float
    prompt_sigma: float  # log-normal spread: heavy-tailed token counts
    prompt_max: int
    completion_median: float  # 0: the operation generates no tokens (embeddings)
    completion_sigma: float
    stream_share: float


_WORKLOADS = (
    _Workload("chat-completions", "ChatCompletions_Create", "gpt-41-ptu", "gpt-41-paygo",
              1500, 1.1, 30_000, 300, 1.0, 0.5),
    _Workload("chat-completions", "ChatCompletions_Create", "gpt-4o-ptu", "gpt-4o-paygo",
              900, 1.0, 30_000, 220, 0.9, 0.4),
    _Workload("completions", "Completions_Create", "gpt-4o-ptu", "gpt-4o-paygo",
              400, 0.8, 30_000, 120, 0.8, 0.0),
    _Workload("embeddings", "Embeddings_Create", None, "embedding-large-paygo",
              350, 0.9, 8191, 0, 0.0, 0.0),
)  # fmt: skip
_MIN_PROMPT_TOKENS = 50
_MAX_COMPLETION_TOKENS = 4000

# Workload mix of the product at position i (cycled); columns follow _WORKLOADS.
_PRODUCT_WORKLOAD_MIXES = (
    (0.15, 0.75, 0.10, 0.00),  # support bot: mostly gpt-4o chat
    (0.30, 0.10, 0.00, 0.60),  # retrieval: embeddings heavy
    (0.70, 0.25, 0.00, 0.05),
    (0.90, 0.00, 0.10, 0.00),
    (0.00, 0.85, 0.15, 0.00),
    (0.60, 0.00, 0.00, 0.40),
)
_UNASSIGNED_WORKLOAD_MIX = (0.40, 0.40, 0.00, 0.20)
_PRODUCT_VOLUME_DECAY = 0.4  # product i gets a share proportional to 0.4**i: a few heavy, some tiny
_SUBSCRIPTION_WEIGHTS = {1: (1.0,), 2: (0.8, 0.2), 3: (0.7, 0.2, 0.1)}

_FAILURE_RESPONSE_CODES = (429, 500, 503, 400)
_FAILURE_RESPONSE_WEIGHTS = (0.55, 0.15, 0.20, 0.10)
_FAILED_WITH_LLM_RECORD_SHARE = 0.5
_FAILED_ZERO_COMPLETION_SHARE = 0.7
_CACHE_VALUES = ("none", "miss", "hit")
_CACHE_WEIGHTS = (0.93, 0.05, 0.02)
_API_VERSIONS = ("2024-10-21", "2025-01-01-preview", "2024-06-01")
_API_VERSION_WEIGHTS = (0.6, 0.3, 0.1)

_DIURNAL_AMPLITUDE = 0.6
_DIURNAL_PEAK_HOUR_UTC = 15  # mid-morning US East
_LLM_OFFSET_MIN_US = -3 * _US_PER_SECOND  # LLM record time relative to its gateway row
_LLM_OFFSET_MAX_US = 8 * _US_PER_SECOND
_EDGE_CROSSINGS_PER_SIDE = 2  # requests pinned to each hour edge so LLM records cross it every hour
_MAX_CHUNKS = 4
_CHUNK_SPACING_US = 1000
_BYPASS_JITTER_SHARE = 0.1  # bypass tokens = round(fraction * logged) +- up to 10 %
# RNG seeds are [profile seed, hour epoch seconds, stream]. Traffic uses [seed, hour] (a missing third
# word counts as 0), so these stream ids keep the other draws apart from it.
_BYPASS_STREAM = 1
_CATALOG_STREAM = 2

_DEFAULT_PRODUCT_IDS = (
    "customer-support-bot",
    "contract-search",
    "hr-assistant",
    "code-review",
    "marketing-copy",
    "finance-analytics",
)


@dataclass(frozen=True)
class SimulationProfile:
    """What traffic to simulate. Every knob has a realistic default; tests use them to inject faults."""

    requests_per_hour: int = 2000  # mean gateway requests per hour, shaped by a diurnal curve
    seed: int = 20260101
    duplicate_fraction: float = 0.02  # share of gateway rows and of LLM rows emitted twice
    failed_fraction: float = 0.03
    chunked_fraction: float = 0.05  # LLM requests split into 2-4 records
    non_llm_fraction: float = 0.02  # successful calls with no LLM record ("list-deployments")
    orphan_llm_fraction: float = 0.005  # LLM records whose gateway row does not exist
    unassigned_fraction: float = 0.03  # calls with empty ProductId and ApimSubscriptionId
    spillover_fraction: float = 0.07  # PTU-model requests served by the pay-as-you-go backend
    bypass_fraction: float = 0.01  # deployment tokens that never passed APIM, relative per deployment-hour
    nonzero_chunk_token_fraction: float = 0.0  # fault: later chunks that (wrongly) carry tokens
    missing_gateway_hours: frozenset[datetime] = frozenset()  # fault: hours whose gateway rows are lost
    product_ids: tuple[str, ...] = _DEFAULT_PRODUCT_IDS  # ordered from heaviest to tiniest volume

    def __post_init__(self) -> None:
        if self.requests_per_hour < 0 or self.seed < 0:
            raise ValueError("requests_per_hour and seed must be >= 0")
        fractions = {
            name: getattr(self, name)
            for name in (
                "duplicate_fraction",
                "failed_fraction",
                "chunked_fraction",
                "non_llm_fraction",
                "orphan_llm_fraction",
                "unassigned_fraction",
                "spillover_fraction",
                "bypass_fraction",
                "nonzero_chunk_token_fraction",
            )
        }
        for name, value in fractions.items():
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be within [0, 1], got {value}")
        if self.orphan_llm_fraction + self.failed_fraction + self.non_llm_fraction > 1.0:
            raise ValueError("orphan_llm_fraction + failed_fraction + non_llm_fraction must not exceed 1")
        if not self.product_ids or len(set(self.product_ids)) != len(self.product_ids):
            raise ValueError("product_ids must be non-empty and unique")
        if "" in self.product_ids:
            raise ValueError("an empty product id is how unassigned calls look; use a name")
        for hour in self.missing_gateway_hours:
            if hour.tzinfo is None or _epoch_us(hour) % _US_PER_HOUR:
                raise ValueError(f"missing_gateway_hours must hold timezone-aware hour starts, got {hour}")


DEFAULT_PROFILE = SimulationProfile()

EXPECTED_DAILY_USAGE_SCHEMA = pa.schema(
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
DAILY_USAGE_KEY = (
    "usage_date",
    "product_id",
    "subscription_id",
    "model_name",
    "deployment_name",
    "backend_id",
)

EXPECTED_BYPASS_SCHEMA = pa.schema(
    [
        ("deployment_name", pa.string()),
        ("resource_id", pa.string()),
        ("prompt_tokens", pa.int64()),
        ("completion_tokens", pa.int64()),
    ]
)


# --- time helpers --------------------------------------------------------------------------------


def _epoch_us(moment: datetime) -> int:
    if moment.tzinfo is None:
        raise ValueError(f"naive datetime {moment}: use timezone-aware UTC datetimes")
    return (moment - _EPOCH) // timedelta(microseconds=1)


def _hours_overlapping(start_us: int, end_us: int) -> range:
    """Start (epoch us) of every hour overlapping [start_us, end_us)."""
    first = start_us // _US_PER_HOUR * _US_PER_HOUR
    return range(first, end_us, _US_PER_HOUR)


def _hours_starting_within(start_us: int, end_us: int) -> range:
    """Start (epoch us) of every hour with start_us <= hour start < end_us."""
    first = -(-start_us // _US_PER_HOUR) * _US_PER_HOUR
    return range(first, end_us, _US_PER_HOUR)


def _diurnal_factor(hour_of_day: int) -> float:
    """Traffic multiplier by UTC hour of day; averages exactly 1 over a day."""
    return 1.0 + _DIURNAL_AMPLITUDE * np.cos(2 * np.pi * (hour_of_day - _DIURNAL_PEAK_HOUR_UTC) / 24)


# --- vectorized helpers ----------------------------------------------------------------------------


def _cumulative(weights) -> np.ndarray:
    """Cumulative distribution of weights along the last axis, last column exactly 1 (no rounding gap)."""
    weights = np.asarray(weights, dtype=float)
    cumulative = np.cumsum(weights / weights.sum(axis=-1, keepdims=True), axis=-1)
    cumulative[..., -1] = 1.0
    return cumulative


def _choose(cumulative: np.ndarray, uniform: np.ndarray) -> np.ndarray:
    """Inverse-CDF choice: index of the bucket each uniform draw falls in (one CDF for all rows)."""
    return np.searchsorted(cumulative, uniform, side="right")


def _choose_per_row(cumulative_rows: np.ndarray, uniform: np.ndarray) -> np.ndarray:
    """Inverse-CDF choice where every row has its own CDF (cumulative_rows[i] for uniform[i])."""
    return (uniform[:, None] >= cumulative_rows).sum(axis=1)


_HEX_DIGITS = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
_GUID_DIGIT_POSITIONS = np.array([i for i in range(36) if i not in (8, 13, 18, 23)])


def _hex_strings(id_bytes: np.ndarray, *, guid: bool) -> pa.Array:
    """16 bytes per row -> lowercase hex text (8-4-4-4-12 GUID or 32 plain digits), built without Python loops."""
    rows = id_bytes.shape[0]
    digits = np.empty((rows, 32), dtype=np.uint8)
    digits[:, 0::2] = _HEX_DIGITS[id_bytes >> 4]
    digits[:, 1::2] = _HEX_DIGITS[id_bytes & 0x0F]
    if guid:
        text = np.full((rows, 36), ord("-"), dtype=np.uint8)
        text[:, _GUID_DIGIT_POSITIONS] = digits
    else:
        text = digits
    width = text.shape[1]
    offsets = np.arange(0, (rows + 1) * width, width, dtype=np.int32)
    return pa.Array.from_buffers(pa.string(), rows, [None, pa.py_buffer(offsets), pa.py_buffer(text)])


def _labels(values) -> pa.Array:
    return pa.array(list(values), type=pa.string())


# --- the catalog: who calls --------------------------------------------------------------------------


class _Catalog:
    """Products, their subscriptions and users, and what each product calls; fixed per profile.

    Subscriptions are numbered globally; the last one is the pseudo-subscription of unassigned calls
    (empty ProductId, ApimSubscriptionId and UserId), whose product index is len(product_ids).
    """

    def __init__(self, profile: SimulationProfile):
        rng = np.random.default_rng([profile.seed, 0, _CATALOG_STREAM])
        product_count = len(profile.product_ids)
        subscription_ids: list[str] = []
        user_ids: list[str] = []
        subscription_product: list[int] = []
        self.subscription_offsets = np.zeros(product_count + 1, dtype=np.int64)
        subscription_cumulative = np.ones((product_count + 1, 3))
        for product_index, product_id in enumerate(profile.product_ids):
            count = int(rng.integers(1, 4))
            self.subscription_offsets[product_index] = len(subscription_ids)
            subscription_cumulative[product_index, :count] = _cumulative(_SUBSCRIPTION_WEIGHTS[count])
            # The main subscription has a readable name; extra ones carry APIM's generated 32-hex ids.
            subscription_ids.append(f"{product_id}-prod")
            user_ids.append(f"svc-{product_id}")
            for extra in _hex_strings(rng.integers(0, 256, (count - 1, 16), dtype=np.uint8), guid=False):
                subscription_ids.append(extra.as_py())
                user_ids.append("1")  # APIM's built-in administrator created these
            subscription_product.extend([product_index] * count)
        self.subscription_offsets[product_count] = len(subscription_ids)
        self.unassigned_subscription = len(subscription_ids)
        subscription_ids.append("")
        user_ids.append("")
        subscription_product.append(product_count)

        self.product_count = product_count
        self.subscription_cumulative = subscription_cumulative
        self.subscription_product = np.array(subscription_product)
        self.product_cumulative = _cumulative(_PRODUCT_VOLUME_DECAY ** np.arange(product_count))
        mixes = [_PRODUCT_WORKLOAD_MIXES[i % len(_PRODUCT_WORKLOAD_MIXES)] for i in range(product_count)]
        self.workload_cumulative = _cumulative([*mixes, _UNASSIGNED_WORKLOAD_MIX])

        # Arrow label arrays, indexed by the integer codes above.
        self.product_id_labels = _labels([*profile.product_ids, ""])
        self.subscription_id_labels = _labels(subscription_ids)
        self.user_id_labels = _labels(user_ids)
        self.report_product_labels = _labels([*profile.product_ids, UNASSIGNED])
        self.report_subscription_labels = _labels(s or UNASSIGNED for s in subscription_ids)


# Per-workload lookup arrays, indexed by workload code.
_WORKLOAD_PTU_DEPLOYMENT = np.array([_DEPLOYMENT_INDEX[w.ptu_deployment or w.paygo_deployment] for w in _WORKLOADS])
_WORKLOAD_PAYGO_DEPLOYMENT = np.array([_DEPLOYMENT_INDEX[w.paygo_deployment] for w in _WORKLOADS])
_WORKLOAD_CAN_SPILL = np.array([w.ptu_deployment is not None for w in _WORKLOADS])
_WORKLOAD_PROMPT_MEDIAN = np.array([w.prompt_median for w in _WORKLOADS])
_WORKLOAD_PROMPT_SIGMA = np.array([w.prompt_sigma for w in _WORKLOADS])
_WORKLOAD_PROMPT_MAX = np.array([w.prompt_max for w in _WORKLOADS])
_WORKLOAD_COMPLETION_MEDIAN = np.array([w.completion_median for w in _WORKLOADS])
_WORKLOAD_COMPLETION_SIGMA = np.array([w.completion_sigma for w in _WORKLOADS])
_WORKLOAD_GENERATES = np.array([w.completion_median > 0 for w in _WORKLOADS])
_WORKLOAD_STREAM_SHARE = np.array([w.stream_share for w in _WORKLOADS])
_GATEWAY_OPERATIONS = (*dict.fromkeys(w.operation_id for w in _WORKLOADS), NON_LLM_OPERATION_ID)
_WORKLOAD_GATEWAY_OPERATION = np.array([_GATEWAY_OPERATIONS.index(w.operation_id) for w in _WORKLOADS])
_NON_LLM_OPERATION = _GATEWAY_OPERATIONS.index(NON_LLM_OPERATION_ID)

_DEPLOYMENT_NAME_LABELS = _labels(d.name for d in _DEPLOYMENT_LIST)
_MODEL_NAME_LABELS = _labels(d.model_name for d in _DEPLOYMENT_LIST)
_RESOURCE_ID_LABELS = _labels(d.resource_id for d in _DEPLOYMENT_LIST)
_REPORT_DEPLOYMENT_LABELS = _labels([*(d.name for d in _DEPLOYMENT_LIST), UNKNOWN])
_REPORT_MODEL_LABELS = _labels([*(d.model_name for d in _DEPLOYMENT_LIST), UNKNOWN])
_BACKEND_ID_LABELS = _labels(_BACKEND_IDS)
_GATEWAY_OPERATION_LABELS = _labels(_GATEWAY_OPERATIONS)
_LLM_OPERATION_LABELS = _labels(w.llm_operation_name for w in _WORKLOADS)
_CACHE_LABELS = _labels(_CACHE_VALUES)
_API_VERSION_LABELS = _labels(_API_VERSIONS)
_METRIC_NAME_LABELS = _labels([METRIC_PROMPT_TOKENS, METRIC_COMPLETION_TOKENS])
_NO_LLM_DEPLOYMENT = len(_DEPLOYMENT_LIST)  # report code of "unknown" model / deployment
_REPORT_DEPLOYMENT_CODES = _NO_LLM_DEPLOYMENT + 1


# --- one hour of requests ----------------------------------------------------------------------------


@dataclass(frozen=True)
class _HourRequests:
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
    llm_record_duplicated: np.ndarray  # bool (n, _MAX_CHUNKS), per (request, SequenceNumber)
    chunk_carries_tokens: np.ndarray  # bool (n, _MAX_CHUNKS), the nonzero-chunk-token fault

    @property
    def has_gateway_row(self) -> np.ndarray:
        return ~self.is_orphan

    @property
    def is_non_llm(self) -> np.ndarray:
        return self.is_success & ~self.has_llm_record

    @property
    def backend(self) -> np.ndarray:
        return _DEPLOYMENT_BACKEND[self.deployment]

    @property
    def llm_records(self) -> np.ndarray:
        """Bool (n, _MAX_CHUNKS): which (request, SequenceNumber) LLM records exist."""
        sequence = np.arange(_MAX_CHUNKS)
        return self.has_llm_record[:, None] & (sequence[None, :] < self.chunk_count[:, None])


def _generate_hour(profile: SimulationProfile, catalog: _Catalog, hour_start_us: int) -> _HourRequests:
    rng = np.random.default_rng([profile.seed, hour_start_us // _US_PER_SECOND])
    hour_of_day = hour_start_us // _US_PER_HOUR % 24
    n = int(rng.poisson(profile.requests_per_hour * _diurnal_factor(hour_of_day)))

    # When in the hour, and how far the LLM record lands from its gateway row. A few requests are
    # pinned to the hour's first/last second with offsets that push their LLM record across the edge.
    time_in_hour = rng.integers(0, _US_PER_HOUR, n)
    llm_offset = rng.integers(_LLM_OFFSET_MIN_US, _LLM_OFFSET_MAX_US + 1, n)
    edge = min(_EDGE_CROSSINGS_PER_SIDE, n // 4)
    time_in_hour[:edge] = rng.integers(0, _US_PER_SECOND, edge)
    llm_offset[:edge] = rng.integers(_LLM_OFFSET_MIN_US, -_US_PER_SECOND, edge)
    time_in_hour[edge : 2 * edge] = rng.integers(_US_PER_HOUR - _US_PER_SECOND, _US_PER_HOUR, edge)
    llm_offset[edge : 2 * edge] = rng.integers(_US_PER_SECOND, _LLM_OFFSET_MAX_US + 1, edge)
    is_edge = np.zeros(n, dtype=bool)
    is_edge[: 2 * edge] = True
    order = np.argsort(time_in_hour, kind="stable")
    gateway_time_us = hour_start_us + time_in_hour[order]
    llm_time_us = gateway_time_us + llm_offset[order]
    is_edge = is_edge[order]

    (
        u_category,
        u_failed_llm,
        u_unassigned,
        u_product,
        u_subscription,
        u_workload,
        u_spillover,
        u_failed_completion,
        u_response_code,
        u_cache,
        u_api_version,
        u_stream,
        u_chunked,
        u_gateway_duplicate,
    ) = rng.random((14, n))
    z_prompt, z_completion, z_latency = rng.standard_normal((3, n))
    failed_completion = rng.integers(1, 21, n)
    chunked_count = rng.integers(2, _MAX_CHUNKS + 1, n)
    gateway_overhead_ms = rng.integers(2, 31, n)
    id_bytes = np.frombuffer(rng.bytes(32 * n), dtype=np.uint8).reshape(n, 2, 16)
    u_llm_duplicate, u_chunk_tokens = rng.random((2, n, _MAX_CHUNKS))

    # Outcome: orphan | failed | successful without LLM record | successful LLM call (always for edges).
    orphan_cut = profile.orphan_llm_fraction
    failed_cut = orphan_cut + profile.failed_fraction
    non_llm_cut = failed_cut + profile.non_llm_fraction
    is_orphan = (u_category < orphan_cut) & ~is_edge
    is_failed = (u_category >= orphan_cut) & (u_category < failed_cut) & ~is_edge
    is_non_llm = (u_category >= failed_cut) & (u_category < non_llm_cut) & ~is_edge
    has_llm_record = ~is_non_llm & (~is_failed | (u_failed_llm < _FAILED_WITH_LLM_RECORD_SHARE))

    # Who calls, what, and which deployment serves it.
    product = np.where(
        u_unassigned < profile.unassigned_fraction,
        catalog.product_count,
        _choose(catalog.product_cumulative, u_product),
    )
    subscription = catalog.subscription_offsets[product] + _choose_per_row(
        catalog.subscription_cumulative[product], u_subscription
    )
    workload = _choose_per_row(catalog.workload_cumulative[product], u_workload)
    spilled = (u_spillover < profile.spillover_fraction) & _WORKLOAD_CAN_SPILL[workload]
    deployment = np.where(spilled, _WORKLOAD_PAYGO_DEPLOYMENT[workload], _WORKLOAD_PTU_DEPLOYMENT[workload])

    # Heavy-tailed (log-normal) token counts; a failed call was charged its prompt, little or no output.
    prompt = _WORKLOAD_PROMPT_MEDIAN[workload] * np.exp(_WORKLOAD_PROMPT_SIGMA[workload] * z_prompt)
    prompt_tokens = np.clip(np.rint(prompt), _MIN_PROMPT_TOKENS, _WORKLOAD_PROMPT_MAX[workload])
    completion = _WORKLOAD_COMPLETION_MEDIAN[workload] * np.exp(_WORKLOAD_COMPLETION_SIGMA[workload] * z_completion)
    completion_tokens = np.clip(np.rint(completion), 1, _MAX_COMPLETION_TOKENS)
    completion_tokens = np.where(
        is_failed,
        np.where(u_failed_completion < _FAILED_ZERO_COMPLETION_SHARE, 0, failed_completion),
        completion_tokens,
    )
    completion_tokens = np.where(_WORKLOAD_GENERATES[workload], completion_tokens, 0)
    prompt_tokens = np.where(has_llm_record, prompt_tokens, 0).astype(np.int64)
    completion_tokens = np.where(has_llm_record, completion_tokens, 0).astype(np.int64)

    failure_code = np.array(_FAILURE_RESPONSE_CODES, dtype=np.int32)[
        _choose(_cumulative(_FAILURE_RESPONSE_WEIGHTS), u_response_code)
    ]
    response_code = np.where(is_failed, failure_code, np.int32(200)).astype(np.int32)

    # Latency grows with output; failures and non-LLM calls return fast.
    latency_noise = np.exp(0.3 * z_latency)
    backend_ms = np.where(
        is_failed | is_non_llm,
        40 * latency_noise,
        (80 + 0.01 * prompt_tokens + 20 * completion_tokens) * latency_noise,
    )
    backend_time_ms = np.rint(backend_ms).astype(np.int64)

    correlation_bytes = id_bytes[:, 0, :].copy()
    correlation_bytes[:, 6] = (correlation_bytes[:, 6] & 0x0F) | 0x40  # GUID version 4
    correlation_bytes[:, 8] = (correlation_bytes[:, 8] & 0x3F) | 0x80  # RFC 4122 variant

    return _HourRequests(
        gateway_time_us=gateway_time_us,
        llm_time_us=llm_time_us,
        is_orphan=is_orphan,
        is_success=~is_failed,
        has_llm_record=has_llm_record,
        subscription=subscription,
        workload=workload,
        deployment=deployment,
        is_spillover=spilled,
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        response_code=response_code,
        total_time_ms=backend_time_ms + gateway_overhead_ms,
        backend_time_ms=backend_time_ms,
        cache=_choose(_cumulative(_CACHE_WEIGHTS), u_cache),
        api_version=_choose(_cumulative(_API_VERSION_WEIGHTS), u_api_version),
        is_stream=u_stream < _WORKLOAD_STREAM_SHARE[workload],
        chunk_count=np.where(u_chunked < profile.chunked_fraction, chunked_count, 1),
        correlation_bytes=correlation_bytes,
        request_id_bytes=id_bytes[:, 1, :],
        gateway_row_duplicated=u_gateway_duplicate < profile.duplicate_fraction,
        llm_record_duplicated=u_llm_duplicate < profile.duplicate_fraction,
        chunk_carries_tokens=u_chunk_tokens < profile.nonzero_chunk_token_fraction,
    )


# --- emitted rows --------------------------------------------------------------------------------------


class _Rows(NamedTuple):
    table: pa.Table
    time_us: np.ndarray  # TimeGenerated of every row, for cheap window filtering

    def within(self, start_us: int, end_us: int) -> pa.Table:
        inside = (self.time_us >= start_us) & (self.time_us < end_us)
        return self.table if inside.all() else self.table.filter(pa.array(inside))


def _timestamps(time_us: np.ndarray) -> pa.Array:
    return pa.array(time_us, type=UTC_TIMESTAMP)


def _gateway_rows(requests: _HourRequests, catalog: _Catalog) -> _Rows:
    logged = np.flatnonzero(requests.has_gateway_row)
    rows = np.repeat(logged, 1 + requests.gateway_row_duplicated[logged])  # a duplicate sits beside its twin
    subscription = requests.subscription[rows]
    operation = np.where(
        requests.is_non_llm[rows], _NON_LLM_OPERATION, _WORKLOAD_GATEWAY_OPERATION[requests.workload[rows]]
    )
    response_code = requests.response_code[rows]
    time_us = requests.gateway_time_us[rows]
    count = len(rows)
    columns = [
        _timestamps(time_us),
        _hex_strings(requests.correlation_bytes[rows], guid=True),
        pa.array(requests.is_success[rows]),
        catalog.product_id_labels.take(catalog.subscription_product[subscription]),
        catalog.subscription_id_labels.take(subscription),
        catalog.user_id_labels.take(subscription),
        pa.repeat(API_ID, count),
        _GATEWAY_OPERATION_LABELS.take(operation),
        _BACKEND_ID_LABELS.take(requests.backend[rows]),
        pa.repeat(REGION, count),
        _CACHE_LABELS.take(requests.cache[rows]),
        pa.array(response_code),
        pa.array(response_code),  # BackendResponseCode: every simulated call reaches its backend
        pa.array(requests.total_time_ms[rows]),
        pa.array(requests.backend_time_ms[rows]),
    ]
    return _Rows(pa.Table.from_arrays(columns, schema=GATEWAY_LOG_SCHEMA), time_us)


def _llm_rows(requests: _HourRequests) -> _Rows:
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
        _timestamps(time_us),
        _hex_strings(requests.correlation_bytes[record_request], guid=True),
        _hex_strings(requests.request_id_bytes[record_request], guid=False),
        _DEPLOYMENT_NAME_LABELS.take(deployment),
        _MODEL_NAME_LABELS.take(deployment),
        _LLM_OPERATION_LABELS.take(requests.workload[record_request]),
        _API_VERSION_LABELS.take(requests.api_version[record_request]),
        pa.repeat(REGION, count),
        pa.array(prompt_tokens),
        pa.array(completion_tokens),
        pa.array(prompt_tokens + completion_tokens),
        pa.array(sequence.astype(np.int32)),
        pa.array(requests.is_stream[record_request]),
    ]
    return _Rows(pa.Table.from_arrays(columns, schema=LLM_LOG_SCHEMA), time_us)


class _GeneratedHour:
    """An hour's requests, with its log rows built on first use (ground truth needs only the arrays)."""

    def __init__(self, requests: _HourRequests, catalog: _Catalog):
        self.requests = requests
        self._catalog = catalog

    @cached_property
    def gateway_rows(self) -> _Rows:
        return _gateway_rows(self.requests, self._catalog)

    @cached_property
    def llm_rows(self) -> _Rows:
        return _llm_rows(self.requests)


def _concat(tables: list[pa.Table], schema: pa.Schema) -> pa.Table:
    return pa.concat_tables(tables) if tables else schema.empty_table()


class _UsageGroups(NamedTuple):
    """Usage report figures per group code (subscription, reported deployment, backend), int64 arrays."""

    group: np.ndarray
    prompt_tokens: np.ndarray
    completion_tokens: np.ndarray
    calls: np.ndarray
    failed_calls: np.ndarray
    first_seen_us: np.ndarray
    last_seen_us: np.ndarray

    @classmethod
    def of_requests(cls, requests: _HourRequests) -> "_UsageGroups":
        """One entry per reported request (billable or failed), reduced to one per group."""
        billable = requests.has_gateway_row & requests.is_success & requests.has_llm_record
        failed = requests.has_gateway_row & ~requests.is_success
        reported = np.flatnonzero(billable | failed)
        deployment = requests.deployment[reported]
        report_deployment = np.where(requests.has_llm_record[reported], deployment, _NO_LLM_DEPLOYMENT)
        group = _encode_usage_group(requests.subscription[reported], report_deployment, _DEPLOYMENT_BACKEND[deployment])
        is_billable = billable[reported]
        gateway_time_us = requests.gateway_time_us[reported]
        return cls(
            group=group,
            prompt_tokens=np.where(is_billable, requests.prompt_tokens[reported], 0),
            completion_tokens=np.where(is_billable, requests.completion_tokens[reported], 0),
            calls=is_billable.astype(np.int64),
            failed_calls=failed[reported].astype(np.int64),
            first_seen_us=gateway_time_us,
            last_seen_us=gateway_time_us,
        ).reduced()

    @classmethod
    def merge(cls, parts: list["_UsageGroups"]) -> "_UsageGroups":
        return cls(*(np.concatenate(column) for column in zip(*parts, strict=True))).reduced()

    def reduced(self) -> "_UsageGroups":
        """One entry per group, groups ascending: sums, earliest first_seen, latest last_seen."""
        if len(self.group) == 0:
            return self
        order = np.argsort(self.group, kind="stable")
        sorted_group = self.group[order]
        starts = np.flatnonzero(np.r_[True, sorted_group[1:] != sorted_group[:-1]])

        def per_group(reduction: np.ufunc, values: np.ndarray) -> np.ndarray:
            return reduction.reduceat(values[order], starts)

        return _UsageGroups(
            group=sorted_group[starts],
            prompt_tokens=per_group(np.add, self.prompt_tokens),
            completion_tokens=per_group(np.add, self.completion_tokens),
            calls=per_group(np.add, self.calls),
            failed_calls=per_group(np.add, self.failed_calls),
            first_seen_us=per_group(np.minimum, self.first_seen_us),
            last_seen_us=per_group(np.maximum, self.last_seen_us),
        )

    def key_parts(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(subscription, reported deployment, backend) codes of each group."""
        rest, backend = np.divmod(self.group, len(_BACKEND_IDS))
        subscription, report_deployment = np.divmod(rest, _REPORT_DEPLOYMENT_CODES)
        return subscription, report_deployment, backend


def _encode_usage_group(subscription, report_deployment, backend) -> np.ndarray:
    """One int64 per report key (product follows from subscription, model from deployment)."""
    return (subscription * _REPORT_DEPLOYMENT_CODES + report_deployment) * len(_BACKEND_IDS) + backend


# --- the source ------------------------------------------------------------------------------------------


class SimulatedSource:
    """A deterministic LogSource of simulated APIM traffic, plus the ground truth of that traffic."""

    name = "simulated"
    _CACHED_HOURS = 4  # an hourly run touches hour-1 .. hour+1; the next run reuses them

    def __init__(self, profile: SimulationProfile = DEFAULT_PROFILE):
        self.profile = profile
        self._catalog = _Catalog(profile)
        self._missing_gateway_hours_us = {_epoch_us(hour) for hour in profile.missing_gateway_hours}
        self._hours: OrderedDict[int, _GeneratedHour] = OrderedDict()

    # LogSource ---------------------------------------------------------------------------------------

    def gateway_logs(self, window: TimeWindow) -> Fetched:
        start_us, end_us = _epoch_us(window.start), _epoch_us(window.end)
        tables = [
            self._hour(hour_us).gateway_rows.within(start_us, end_us)
            for hour_us in _hours_overlapping(start_us, end_us)  # gateway rows never leave their hour
            if hour_us not in self._missing_gateway_hours_us
        ]
        return Fetched(_concat(tables, GATEWAY_LOG_SCHEMA))

    def llm_logs(self, window: TimeWindow) -> Fetched:
        start_us, end_us = _epoch_us(window.start), _epoch_us(window.end)
        # LLM records can sit a few seconds on the far side of their request's hour.
        tables = [
            self._hour(hour_us).llm_rows.within(start_us, end_us)
            for hour_us in _hours_overlapping(start_us - _US_PER_HOUR, end_us + _US_PER_HOUR)
        ]
        return Fetched(_concat(tables, LLM_LOG_SCHEMA))

    def deployment_metrics(self, window: TimeWindow) -> Fetched:
        """Hourly token totals per deployment: the logged SequenceNumber-0 tokens plus bypass traffic."""
        hours = _hours_starting_within(_epoch_us(window.start), _epoch_us(window.end))
        deployment_count = len(_DEPLOYMENT_LIST)
        # totals[hour, deployment, metric], metric 0 = prompt, 1 = completion
        totals = np.zeros((len(hours), deployment_count, 2), dtype=np.int64)
        for position, hour_us in enumerate(hours):
            logged = self._logged_llm_tokens(hour_us)
            totals[position] = (logged + self._bypass_tokens(hour_us, logged)).T
        deployment = np.tile(np.repeat(np.arange(deployment_count), 2), len(hours))
        metric = np.tile([0, 1], len(hours) * deployment_count)
        columns = [
            _timestamps(np.repeat(np.array(hours, dtype=np.int64), deployment_count * 2)),
            _RESOURCE_ID_LABELS.take(deployment),
            _DEPLOYMENT_NAME_LABELS.take(deployment),
            _METRIC_NAME_LABELS.take(metric),
            pa.array(totals.reshape(-1)),
        ]
        return Fetched(pa.Table.from_arrays(columns, schema=DEPLOYMENT_METRICS_SCHEMA))

    # Ground truth ------------------------------------------------------------------------------------

    def expected_daily_usage(self, day: date) -> pa.Table:
        """The usage report of one UTC day, computed from the generated requests, not from the logs.

        Grain: (usage_date, product_id, subscription_id, model_name, deployment_name, backend_id) over
        the distinct gateway requests of the day. Empty product / subscription -> "unassigned"; model and
        deployment come from the SequenceNumber-0 LLM record, "unknown" without one. Tokens and calls
        count billable requests (successful with an LLM record); failed_calls counts unsuccessful ones;
        successful calls without LLM record and orphan LLM records are left out; first/last_seen span
        the billable and failed requests. Sorted by the key.

        It describes the traffic that happened: hours in `missing_gateway_hours` are included although
        their gateway rows are not returned, so a pipeline that loses them falls short of this answer.
        """
        day_start_us = _epoch_us(datetime.combine(day, time(), tzinfo=UTC))
        # Aggregate hour by hour and merge the small partials: a 10M-request day never sits in memory.
        hourly = [
            _UsageGroups.of_requests(self._hour(hour_us).requests)
            for hour_us in _hours_overlapping(day_start_us, day_start_us + 24 * _US_PER_HOUR)
        ]
        usage = _UsageGroups.merge(hourly)
        subscription, report_deployment, backend = usage.key_parts()
        columns = [
            pa.array(np.full(len(usage.group), day), type=pa.date32()),
            self._catalog.report_product_labels.take(self._catalog.subscription_product[subscription]),
            self._catalog.report_subscription_labels.take(subscription),
            _REPORT_MODEL_LABELS.take(report_deployment),
            _REPORT_DEPLOYMENT_LABELS.take(report_deployment),
            _BACKEND_ID_LABELS.take(backend),
            pa.array(usage.prompt_tokens),
            pa.array(usage.completion_tokens),
            pa.array(usage.prompt_tokens + usage.completion_tokens),
            pa.array(usage.calls),
            pa.array(usage.failed_calls),
            _timestamps(usage.first_seen_us),
            _timestamps(usage.last_seen_us),
        ]
        table = pa.Table.from_arrays(columns, schema=EXPECTED_DAILY_USAGE_SCHEMA)
        return table.sort_by([(key, "ascending") for key in DAILY_USAGE_KEY])

    def expected_hourly_requests(self, hour: datetime) -> dict:
        """Counts of the requests generated for one hour (gateway TimeGenerated in the hour).

        LLM counts cover the LLM records of this hour's requests (orphans included), wherever their
        own TimeGenerated falls; row counts include duplicates as generated, even for a missing hour.
        """
        hour_us = _epoch_us(hour)
        if hour_us % _US_PER_HOUR:
            raise ValueError(f"not an hour start: {hour}")
        requests = self._hour(hour_us).requests
        gateway = requests.has_gateway_row
        billable = gateway & requests.is_success & requests.has_llm_record
        failed = gateway & ~requests.is_success
        duplicated_gateway = gateway & requests.gateway_row_duplicated
        records = requests.llm_records
        duplicated_records = records & requests.llm_record_duplicated
        llm_of_gateway = gateway & requests.has_llm_record
        unassigned = self._catalog.unassigned_subscription
        prompt_tokens = int(requests.prompt_tokens[billable].sum())
        completion_tokens = int(requests.completion_tokens[billable].sum())
        return {
            "hour": _EPOCH + timedelta(microseconds=hour_us),
            "gateway_rows_missing": hour_us in self._missing_gateway_hours_us,
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
            "llm_records_after_hour": int((llm_of_gateway & (requests.llm_time_us >= hour_us + _US_PER_HOUR)).sum()),
            "nonzero_token_chunk_records": int((records & requests.chunk_carries_tokens)[:, 1:].sum()),
        }

    def expected_bypass_tokens(self, window: TimeWindow) -> pa.Table:
        """Per deployment: tokens in deployment_metrics(window) that never passed APIM (one row each)."""
        bypass = np.zeros((2, len(_DEPLOYMENT_LIST)), dtype=np.int64)
        for hour_us in _hours_starting_within(_epoch_us(window.start), _epoch_us(window.end)):
            bypass += self._bypass_tokens(hour_us, self._logged_llm_tokens(hour_us))
        columns = [_DEPLOYMENT_NAME_LABELS, _RESOURCE_ID_LABELS, pa.array(bypass[0]), pa.array(bypass[1])]
        table = pa.Table.from_arrays(columns, schema=EXPECTED_BYPASS_SCHEMA)
        return table.sort_by("deployment_name")

    # Internals ---------------------------------------------------------------------------------------

    def _hour(self, hour_start_us: int) -> _GeneratedHour:
        """The generated hour, from a small LRU cache: memory stays bounded on 10M-request days."""
        generated = self._hours.get(hour_start_us)
        if generated is None:
            generated = _GeneratedHour(_generate_hour(self.profile, self._catalog, hour_start_us), self._catalog)
            self._hours[hour_start_us] = generated
            if len(self._hours) > self._CACHED_HOURS:
                self._hours.popitem(last=False)
        else:
            self._hours.move_to_end(hour_start_us)
        return generated

    def _logged_llm_tokens(self, hour_us: int) -> np.ndarray:
        """(2, deployments) int64: prompt / completion tokens of the distinct SequenceNumber-0 LLM records
        whose TimeGenerated falls in the hour (failed and orphan requests included)."""
        logged = np.zeros((2, len(_DEPLOYMENT_LIST)), dtype=np.int64)
        for generated_hour_us in (hour_us - _US_PER_HOUR, hour_us, hour_us + _US_PER_HOUR):
            requests = self._hour(generated_hour_us).requests
            in_hour = (
                requests.has_llm_record
                & (requests.llm_time_us >= hour_us)
                & (requests.llm_time_us < hour_us + _US_PER_HOUR)
            )
            deployment = requests.deployment[in_hour]
            for metric, tokens in enumerate((requests.prompt_tokens, requests.completion_tokens)):
                # float64 weights are exact here: an hour's sum stays far below 2**53
                sums = np.bincount(deployment, weights=tokens[in_hour], minlength=len(_DEPLOYMENT_LIST))
                logged[metric] += np.rint(sums).astype(np.int64)
        return logged

    def _bypass_tokens(self, hour_us: int, logged: np.ndarray) -> np.ndarray:
        """(2, deployments): round(bypass_fraction * logged) plus deterministic jitter of up to 10 %."""
        rng = np.random.default_rng([self.profile.seed, hour_us // _US_PER_SECOND, _BYPASS_STREAM])
        base = np.rint(self.profile.bypass_fraction * logged).astype(np.int64)
        spread = (base * _BYPASS_JITTER_SHARE).astype(np.int64)
        return base + rng.integers(-spread, spread + 1)
