"""Deployment metrics: the hourly token totals Azure Monitor would report for each simulated deployment.

Each resource reports its own deployments (ResourceId = the account's ARM id): the PTU resource's
`gpt-4.1` and the pay-as-you-go resource's `gpt-4.1` are two series with the same ModelDeploymentName.
They count the tokens of every distinct SequenceNumber-0 LLM record by its own TimeGenerated (failed
and orphan requests included), plus bypass tokens: traffic that reached a deployment without passing
APIM, so reconciliation always has a small, known gap to find. The PTU deployments also report their
utilisation (`AzureOpenAIProvisionedManagedUtilizationV2`) per minute in whole percent, from the same
minute model that decides their spill and 429s (ptu_minutes): 100 in a minute whose load spilled.
"""

from collections.abc import Callable, Iterator

import numpy as np
import pyarrow as pa

from chargeback_pipeline.sources.simulated.arrays import labels, timestamps
from chargeback_pipeline.sources.simulated.deployments import (
    DEPLOYMENT_LIST,
    DEPLOYMENT_NAME_LABELS,
    PTU_DEPLOYMENT_CODES,
    RESOURCE_ID_LABELS,
)
from chargeback_pipeline.sources.simulated.hour_requests import HourRequests
from chargeback_pipeline.sources.simulated.hours import US_PER_HOUR, US_PER_SECOND
from chargeback_pipeline.sources.simulated.profile import BYPASS_STREAM, SimulationProfile
from chargeback_pipeline.sources.simulated.ptu_minutes import MINUTES_PER_HOUR, US_PER_MINUTE
from chargeback_pipeline.storage.schemas import (
    DEPLOYMENT_METRICS_SCHEMA,
    METRIC_COMPLETION_TOKENS,
    METRIC_PROMPT_TOKENS,
    METRIC_PTU_UTILIZATION,
)

# The requests generated for the hour starting at an epoch microsecond (the source's cached hours).
RequestsOf = Callable[[int], HourRequests]

_BYPASS_JITTER_SHARE = 0.1  # bypass tokens = round(fraction * logged) +- up to 10 %
_METRIC_NAME_LABELS = labels([METRIC_PROMPT_TOKENS, METRIC_COMPLETION_TOKENS])


def deployment_metrics_table(profile: SimulationProfile, hours: range, requests_of: RequestsOf) -> pa.Table:
    """Hourly token totals per resource and deployment: the logged SequenceNumber-0 tokens plus bypass
    traffic; one row per hour, deployment and metric, zeros included."""
    deployment_count = len(DEPLOYMENT_LIST)
    # totals[hour, deployment, metric], metric 0 = prompt, 1 = completion
    totals = np.zeros((len(hours), deployment_count, 2), dtype=np.int64)
    for position, hour_us in enumerate(hours):
        logged = logged_llm_tokens(hour_us, requests_of)
        totals[position] = (logged + bypass_tokens(profile, hour_us, logged)).T
    deployment = np.tile(np.repeat(np.arange(deployment_count), 2), len(hours))
    metric = np.tile([0, 1], len(hours) * deployment_count)
    columns = [
        timestamps(np.repeat(np.array(hours, dtype=np.int64), deployment_count * 2)),
        RESOURCE_ID_LABELS.take(deployment),
        DEPLOYMENT_NAME_LABELS.take(deployment),
        _METRIC_NAME_LABELS.take(metric),
        pa.array(totals.reshape(-1)),
    ]
    tokens = pa.Table.from_arrays(columns, schema=DEPLOYMENT_METRICS_SCHEMA)
    return pa.concat_tables([tokens, utilization_table(hours, requests_of)])


def utilization_table(hours: range, requests_of: RequestsOf) -> pa.Table:
    """One row per minute and PTU deployment: its utilisation percent in the minute (ptu_minutes), as
    Azure Monitor reports AzureOpenAIProvisionedManagedUtilizationV2 at PT1M."""
    ptu = PTU_DEPLOYMENT_CODES
    minutes = np.arange(MINUTES_PER_HOUR, dtype=np.int64) * US_PER_MINUTE
    # percent[hour, minute, deployment], flattened in that order
    percent = np.stack([requests_of(hour_us).ptu_minute_utilisation.T for hour_us in hours]) if len(hours) else None
    minute_us = (np.array(hours, dtype=np.int64)[:, None] + minutes[None, :]).reshape(-1)
    columns = [
        timestamps(np.repeat(minute_us, len(ptu))),
        RESOURCE_ID_LABELS.take(np.tile(ptu, len(minute_us))),
        DEPLOYMENT_NAME_LABELS.take(np.tile(ptu, len(minute_us))),
        pa.array([METRIC_PTU_UTILIZATION] * (len(minute_us) * len(ptu)), pa.string()),
        pa.array(percent.reshape(-1) if percent is not None else [], pa.int64()),
    ]
    return pa.Table.from_arrays(columns, schema=DEPLOYMENT_METRICS_SCHEMA)


def llm_records_in_hour(hour_us: int, requests_of: RequestsOf) -> Iterator[tuple[int, HourRequests, np.ndarray]]:
    """(generated hour, its requests, mask) for the requests whose SequenceNumber-0 LLM record has its
    TimeGenerated in the hour: they come from the hour itself and from its two neighbours, because LLM
    records can sit a few seconds on the far side of their request's hour."""
    for generated_hour_us in (hour_us - US_PER_HOUR, hour_us, hour_us + US_PER_HOUR):
        requests = requests_of(generated_hour_us)
        in_hour = (
            requests.has_llm_record & (requests.llm_time_us >= hour_us) & (requests.llm_time_us < hour_us + US_PER_HOUR)
        )
        yield generated_hour_us, requests, in_hour


def tokens_by_deployment(requests: HourRequests, selected: np.ndarray) -> np.ndarray:
    """(2, deployments) int64: prompt / completion tokens of the selected requests per serving deployment."""
    deployment = requests.deployment[selected]
    sums = np.zeros((2, len(DEPLOYMENT_LIST)), dtype=np.int64)
    for metric, tokens in enumerate((requests.prompt_tokens, requests.completion_tokens)):
        # float64 weights are exact here: an hour's sum stays far below 2**53
        totals = np.bincount(deployment, weights=tokens[selected], minlength=len(DEPLOYMENT_LIST))
        sums[metric] = np.rint(totals).astype(np.int64)
    return sums


def logged_llm_tokens(hour_us: int, requests_of: RequestsOf) -> np.ndarray:
    """(2, deployments) int64: prompt / completion tokens of the distinct SequenceNumber-0 LLM records
    whose TimeGenerated falls in the hour (failed and orphan requests included), per serving deployment."""
    logged = np.zeros((2, len(DEPLOYMENT_LIST)), dtype=np.int64)
    for _, requests, in_hour in llm_records_in_hour(hour_us, requests_of):
        logged += tokens_by_deployment(requests, in_hour)
    return logged


def bypass_tokens(profile: SimulationProfile, hour_us: int, logged: np.ndarray) -> np.ndarray:
    """(2, deployments): round(bypass_fraction * logged) plus deterministic jitter of up to 10 %."""
    rng = np.random.default_rng([profile.seed, hour_us // US_PER_SECOND, BYPASS_STREAM])
    base = np.rint(profile.bypass_fraction * logged).astype(np.int64)
    spread = (base * _BYPASS_JITTER_SHARE).astype(np.int64)
    return base + rng.integers(-spread, spread + 1)
