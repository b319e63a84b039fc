"""One hour of simulated traffic, drawn from an RNG seeded with (profile seed, hour).

All random draws happen in a fixed order and with sizes that do not depend on the fault knobs:
turning a knob (say `nonzero_chunk_token_fraction`) changes only what that knob governs. Do not
reorder or resize the draws below: every generated hour, and so every test's ground truth, would change.
"""

import numpy as np

from chargeback_pipeline.sources.simulated.arrays import choose, choose_per_row, cumulative
from chargeback_pipeline.sources.simulated.catalog import Catalog
from chargeback_pipeline.sources.simulated.deployments import DEPLOYMENT_IS_PTU, DEPLOYMENT_LIST, PTU_DEPLOYMENT_CODES
from chargeback_pipeline.sources.simulated.hour_requests import MAX_CHUNKS, HourRequests
from chargeback_pipeline.sources.simulated.hours import US_PER_HOUR, US_PER_SECOND
from chargeback_pipeline.sources.simulated.profile import SimulationProfile
from chargeback_pipeline.sources.simulated.ptu_minutes import (
    MINUTES_PER_HOUR,
    US_PER_MINUTE,
    bursty_times,
    capacity_per_minute,
    minute_utilisation,
    minute_weights,
    overflowing,
    weighted_tokens,
)
from chargeback_pipeline.sources.simulated.workloads import (
    MAX_COMPLETION_TOKENS,
    MIN_PROMPT_TOKENS,
    WORKLOAD_CAN_SPILL,
    WORKLOAD_COMPLETION_MEDIAN,
    WORKLOAD_COMPLETION_SIGMA,
    WORKLOAD_GENERATES,
    WORKLOAD_HOME_DEPLOYMENT,
    WORKLOAD_PROMPT_MAX,
    WORKLOAD_PROMPT_MEDIAN,
    WORKLOAD_PROMPT_SIGMA,
    WORKLOAD_SPILLOVER_DEPLOYMENT,
    WORKLOAD_STREAM_SHARE,
)

_FAILURE_RESPONSE_CODES = (429, 500, 503, 400)
_FAILURE_RESPONSE_WEIGHTS = (0.55, 0.15, 0.20, 0.10)
_FAILED_WITH_LLM_RECORD_SHARE = 0.5
_FAILED_ZERO_COMPLETION_SHARE = 0.7
CACHE_VALUES = ("none", "miss", "hit")
_CACHE_WEIGHTS = (0.93, 0.05, 0.02)
API_VERSIONS = ("2024-10-21", "2025-01-01-preview", "2024-06-01")
_API_VERSION_WEIGHTS = (0.6, 0.3, 0.1)

_DIURNAL_AMPLITUDE = 0.6
_DIURNAL_PEAK_HOUR_UTC = 15  # mid-morning US East
_LLM_OFFSET_MIN_US = -3 * US_PER_SECOND  # LLM record time relative to its gateway row
_LLM_OFFSET_MAX_US = 8 * US_PER_SECOND
_EDGE_CROSSINGS_PER_SIDE = 2  # requests pinned to each hour edge so LLM records cross it every hour


def diurnal_factor(hour_of_day: int) -> float:
    """Traffic multiplier by UTC hour of day; averages exactly 1 over a day."""
    return 1.0 + _DIURNAL_AMPLITUDE * np.cos(2 * np.pi * (hour_of_day - _DIURNAL_PEAK_HOUR_UTC) / 24)


def generate_hour(profile: SimulationProfile, catalog: Catalog, hour_start_us: int) -> HourRequests:
    """The requests of the hour starting at hour_start_us (epoch us), the same on every call."""
    rng = np.random.default_rng([profile.seed, hour_start_us // US_PER_SECOND])
    hour_of_day = hour_start_us // US_PER_HOUR % 24
    n = int(rng.poisson(profile.requests_per_hour * diurnal_factor(hour_of_day)))

    # When in the hour, and how far the LLM record lands from its gateway row. A few requests are
    # pinned to the hour's first/last second with offsets that push their LLM record across the edge.
    time_in_hour = rng.integers(0, US_PER_HOUR, n)
    llm_offset = rng.integers(_LLM_OFFSET_MIN_US, _LLM_OFFSET_MAX_US + 1, n)
    edge = min(_EDGE_CROSSINGS_PER_SIDE, n // 4)
    time_in_hour[:edge] = rng.integers(0, US_PER_SECOND, edge)
    llm_offset[:edge] = rng.integers(_LLM_OFFSET_MIN_US, -US_PER_SECOND, edge)
    time_in_hour[edge : 2 * edge] = rng.integers(US_PER_HOUR - US_PER_SECOND, US_PER_HOUR, edge)
    llm_offset[edge : 2 * edge] = rng.integers(US_PER_SECOND, _LLM_OFFSET_MAX_US + 1, edge)
    is_edge = np.zeros(n, dtype=bool)
    is_edge[: 2 * edge] = True
    # Bursty minutes (ptu_minutes): the edge requests keep their pinned first / last second.
    weights = minute_weights(profile.seed, hour_start_us // US_PER_SECOND)
    time_in_hour = np.where(is_edge, time_in_hour, bursty_times(time_in_hour, weights))
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
        u_failed_completion,
        u_response_code,
        u_cache,
        u_api_version,
        u_stream,
        u_chunked,
        u_gateway_duplicate,
    ) = rng.random((13, n))
    z_prompt, z_completion, z_latency = rng.standard_normal((3, n))
    failed_completion = rng.integers(1, 21, n)
    chunked_count = rng.integers(2, MAX_CHUNKS + 1, n)
    gateway_overhead_ms = rng.integers(2, 31, n)
    id_bytes = np.frombuffer(rng.bytes(32 * n), dtype=np.uint8).reshape(n, 2, 16)
    u_llm_duplicate, u_chunk_tokens = rng.random((2, n, MAX_CHUNKS))

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
        choose(catalog.product_cumulative, u_product),
    )
    subscription = catalog.subscription_offsets[product] + choose_per_row(
        catalog.subscription_cumulative[product], u_subscription
    )
    workload = choose_per_row(catalog.workload_cumulative[product], u_workload)
    home = WORKLOAD_HOME_DEPLOYMENT[workload]

    # Heavy-tailed (log-normal) token counts; a failed call was charged its prompt, little or no output.
    prompt = WORKLOAD_PROMPT_MEDIAN[workload] * np.exp(WORKLOAD_PROMPT_SIGMA[workload] * z_prompt)
    prompt_tokens = np.clip(np.rint(prompt), MIN_PROMPT_TOKENS, WORKLOAD_PROMPT_MAX[workload])
    completion = WORKLOAD_COMPLETION_MEDIAN[workload] * np.exp(WORKLOAD_COMPLETION_SIGMA[workload] * z_completion)
    completion_tokens = np.clip(np.rint(completion), 1, MAX_COMPLETION_TOKENS)
    completion_tokens = np.where(
        is_failed,
        np.where(u_failed_completion < _FAILED_ZERO_COMPLETION_SHARE, 0, failed_completion),
        completion_tokens,
    )
    completion_tokens = np.where(WORKLOAD_GENERATES[workload], completion_tokens, 0)
    prompt_tokens = np.where(has_llm_record, prompt_tokens, 0).astype(np.int64)
    completion_tokens = np.where(has_llm_record, completion_tokens, 0).astype(np.int64)
    surge = catalog.token_factor(product, hour_start_us)  # profile.surge_*: None (no change) unless set
    if surge is not None:
        prompt_tokens = np.rint(prompt_tokens * surge).astype(np.int64)
        completion_tokens = np.rint(completion_tokens * surge).astype(np.int64)

    # Load against capacity, minute by minute (ptu_minutes): what a PTU deployment's minute does not hold
    # spills to its pay-as-you-go twin. Successful requests with tokens bear load (orphans too: their
    # gateway row is lost, not their call); a failed call never spills, its failure is the PTU's answer.
    minute = (gateway_time_us - hour_start_us) // US_PER_MINUTE
    load = weighted_tokens(home, prompt_tokens, completion_tokens)
    bears_load = ~is_failed & has_llm_record & DEPLOYMENT_IS_PTU[home]
    capacity = capacity_per_minute(profile.ptu_count_of)
    spilled = overflowing(home, minute, load, bears_load, capacity) & WORKLOAD_CAN_SPILL[workload]
    deployment = np.where(spilled, WORKLOAD_SPILLOVER_DEPLOYMENT[workload], home)
    utilisation = minute_utilisation(
        deployment, minute, load, bears_load & ~spilled, np.where(spilled, home, -1), capacity
    )

    failure_code = np.array(_FAILURE_RESPONSE_CODES, dtype=np.int32)[
        choose(cumulative(_FAILURE_RESPONSE_WEIGHTS), u_response_code)
    ]
    # A PTU answers 429 only in a saturated minute: there its server-side failures are throttling (429s the
    # gateway did not retry on the spillover), elsewhere a 429 drawn for a PTU call is a 503. Same draws.
    saturated_minute = np.zeros((len(DEPLOYMENT_LIST), MINUTES_PER_HOUR), dtype=bool)
    saturated_minute[PTU_DEPLOYMENT_CODES] = utilisation >= 100
    throttled_here = saturated_minute[home, minute]
    on_ptu = DEPLOYMENT_IS_PTU[home]
    server_side = failure_code != 400
    failure_code = np.where(on_ptu & server_side & throttled_here, np.int32(429), failure_code)
    failure_code = np.where(on_ptu & ~throttled_here & (failure_code == 429), np.int32(503), failure_code)
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

    return HourRequests(
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
        cache=choose(cumulative(_CACHE_WEIGHTS), u_cache),
        api_version=choose(cumulative(_API_VERSION_WEIGHTS), u_api_version),
        is_stream=u_stream < WORKLOAD_STREAM_SHARE[workload],
        chunk_count=np.where(u_chunked < profile.chunked_fraction, chunked_count, 1),
        correlation_bytes=correlation_bytes,
        request_id_bytes=id_bytes[:, 1, :],
        gateway_row_duplicated=u_gateway_duplicate < profile.duplicate_fraction,
        llm_record_duplicated=u_llm_duplicate < profile.duplicate_fraction,
        chunk_carries_tokens=u_chunk_tokens < profile.nonzero_chunk_token_fraction,
        ptu_minute_utilisation=utilisation,
    )
