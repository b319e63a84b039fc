"""The PTU deployments minute by minute: when requests arrive (with bursts), which ones the deployment's
capacity holds and which spill, and the utilisation Azure Monitor reports for each minute.

One model drives all three, so load and capacity agree: a PTU deployment of N PTU holds, each minute,
N x the model's input tokens per minute per PTU (`deployments.PTU_MODEL_CAPACITY`) weighted tokens
(prompt + output weight x completion). Its successful requests are taken in arrival order; a request is
served while at least half of it fits in what is left of the minute (so a minute's served tokens land on
the capacity on average, neither always under nor always over it), and the rest spill to the pay-as-you-go
twin. A minute that spilled is saturated: Azure's `AzureOpenAIProvisionedManagedUtilizationV2` reads 100,
and the deployment's server-side failures in it are 429s. Otherwise the metric is the served share of the
capacity, in whole percent (floored), and the deployment answers no 429.

Bursts: the minutes of an hour are not equally busy. Each hour draws (from its own RNG stream, so the
traffic's draws are untouched) a weight per minute around 1 and a few burst minutes several times busier;
a request's time in the hour is its uniform draw mapped through those weights, so an hour at 40 % of its
capacity on average can still saturate in its busiest minutes, as real PTU deployments do.
"""

import numpy as np

from chargeback_pipeline.sources.simulated.deployments import (
    DEPLOYMENT_LIST,
    DEPLOYMENT_OUTPUT_WEIGHT,
    DEPLOYMENT_TOKENS_PER_PTU_MINUTE,
    PTU_DEPLOYMENT_CODES,
)
from chargeback_pipeline.sources.simulated.hours import US_PER_SECOND

MINUTES_PER_HOUR = 60
US_PER_MINUTE = 60 * US_PER_SECOND
BURST_STREAM = 3  # RNG stream of the hour's minute weights (profile.BYPASS_STREAM / CATALOG_STREAM: 1 / 2)
_MINUTE_SIGMA = 0.25  # spread of an ordinary minute's weight (log-normal around 1)
_BURSTS_PER_HOUR = (0, 4)  # how many burst minutes an hour has: 0 to 3
_BURST_FACTOR = (2.0, 4.0)  # a burst minute is this many times as busy


def minute_weights(seed: int, hour_seconds: int) -> np.ndarray:
    """(60,) the hour's relative busyness per minute, summing to 1, the same on every call."""
    rng = np.random.default_rng([seed, hour_seconds, BURST_STREAM])
    weights = np.exp(_MINUTE_SIGMA * rng.standard_normal(MINUTES_PER_HOUR))
    bursts = rng.choice(MINUTES_PER_HOUR, size=int(rng.integers(*_BURSTS_PER_HOUR)), replace=False)
    weights[bursts] *= rng.uniform(*_BURST_FACTOR, size=len(bursts))
    return weights / weights.sum()


def bursty_times(time_in_hour_us: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Uniform times in the hour mapped through the minute weights (an inverse CDF): a minute receives its
    weight's share of the requests, spread evenly inside it. Order is kept, so the map is monotone."""
    edges = np.concatenate([[0.0], np.cumsum(weights)])
    edges[-1] = 1.0
    share = time_in_hour_us / (MINUTES_PER_HOUR * US_PER_MINUTE)
    minute = np.clip(np.searchsorted(edges, share, side="right") - 1, 0, MINUTES_PER_HOUR - 1)
    inside = (share - edges[minute]) / weights[minute]
    times = np.floor((minute + np.clip(inside, 0.0, 1.0)) * US_PER_MINUTE).astype(np.int64)
    return np.minimum(times, MINUTES_PER_HOUR * US_PER_MINUTE - 1)


def weighted_tokens(deployment: np.ndarray, prompt_tokens: np.ndarray, completion_tokens: np.ndarray) -> np.ndarray:
    """int64 per request: prompt + the deployment's output weight x completion (the PTU's currency)."""
    return prompt_tokens + DEPLOYMENT_OUTPUT_WEIGHT[deployment] * completion_tokens


def capacity_per_minute(ptu_counts: dict[str, int]) -> np.ndarray:
    """(deployments,) weighted tokens per minute each deployment holds (0 off PTU)."""
    counts = np.array([ptu_counts.get(d.name, 0) if d.billing == "ptu" else 0 for d in DEPLOYMENT_LIST])
    return counts * DEPLOYMENT_TOKENS_PER_PTU_MINUTE


def overflowing(
    home: np.ndarray, minute: np.ndarray, load: np.ndarray, bears_load: np.ndarray, capacity: np.ndarray
) -> np.ndarray:
    """Bool per request: a load-bearing request to a PTU deployment that its minute's capacity did not hold.
    Requests are in arrival order; `minute` is nondecreasing."""
    spills = np.zeros(len(home), dtype=bool)
    for code in PTU_DEPLOYMENT_CODES:
        index = np.flatnonzero(bears_load & (home == code))
        if not len(index):
            continue
        tokens, minutes = load[index], minute[index]
        before = np.cumsum(tokens) - tokens  # the deployment's tokens before each request, this hour
        first = np.searchsorted(minutes, minutes, side="left")  # the minute's first request
        before_in_minute = before - before[first]
        # Served while at least half of it fits; 2x avoids fractions. (The vectorised rule counts the
        # minute's earlier requests whether served or not: a minute that has overflowed stays overflowed.)
        spills[index] = 2 * before_in_minute + tokens > 2 * capacity[code]
    return spills


def minute_utilisation(
    deployment: np.ndarray,
    minute: np.ndarray,
    load: np.ndarray,
    served: np.ndarray,
    spilled_home: np.ndarray,
    capacity: np.ndarray,
) -> np.ndarray:
    """(PTU deployments, 60) int64: Azure's utilisation percent per minute. `served`: load-bearing requests
    the PTU served (by their serving `deployment`); `spilled_home`: per request, the PTU deployment code it
    spilled from, -1 if none."""
    percent = np.zeros((len(PTU_DEPLOYMENT_CODES), MINUTES_PER_HOUR), dtype=np.int64)
    for row, code in enumerate(PTU_DEPLOYMENT_CODES):
        mask = served & (deployment == code)
        tokens = np.bincount(minute[mask], weights=load[mask], minlength=MINUTES_PER_HOUR)
        used = np.floor(100 * tokens / capacity[code]).astype(np.int64) if capacity[code] else np.zeros(60, int)
        saturated = np.bincount(minute[spilled_home == code], minlength=MINUTES_PER_HOUR) > 0
        percent[row] = np.where(saturated, 100, np.minimum(used, 100))
    return percent
