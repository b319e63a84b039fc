"""Simulated Azure API Management traffic: the pipeline's default source and the tests' ground truth.

Every hour is generated on its own from an RNG seeded with (profile seed, hour), so an hour always
yields the same rows whatever window asked for it. A generated hour is a set of *requests* held as numpy
arrays, one entry per request. The emitted log rows (duplicates, LLM chunks, orphans, missing gateway
rows) are derived from those arrays, and the ground truth is computed from the same arrays, never by
joining the emitted logs, so it is an independent answer the pipeline can be checked against.

All random draws of an hour happen in a fixed order and with sizes that do not depend on the fault
knobs: turning a knob (say `nonzero_chunk_token_fraction`) changes only what that knob governs.

The topology is production's: an APIM backend pool of a PTU resource (`aoai-ptu-eastus`) and the
pay-as-you-go resource it spills over to (`aoai-paygo-eastus`), both hosting deployments named `gpt-4.1`
and `gpt-4o`; `text-embedding-3-large` lives on the pay-as-you-go resource only. Deployments are
identified by (backend_id, deployment name). Each PTU deployment has a PTU count
(`SimulationProfile.ptu_counts`); minute by minute, the load it cannot hold spills to the pay-as-you-go
twin, its utilisation metric reads 100 % and its server-side failures are 429s; in a minute that fits it
never answers 429 (`ptu_minutes`, `SimulatedSource.expected_saturated_minutes`).

Modules, in the order data flows through them:
    profile        SimulationProfile: the knobs (volume, seed, fault fractions)
    deployments    the Azure OpenAI deployments and backends that serve the calls
    workloads      the kinds of LLM call, their deployments and token sizes
    catalog        who calls: products, subscriptions, users of a profile
    hour_requests  the numpy arrays of one hour's requests
    traffic        drawing one hour's requests from the seeded RNG
    ptu_minutes    bursty minutes, and PTU load against capacity: spill, 429s, utilisation
    log_rows       the gateway and LLM log rows those requests emit
    metrics        the hourly per-deployment token metrics (logged plus bypass), PTU utilisation per minute
    usage_groups   folding requests into usage report groups
    ground_truth   the answers a pipeline must reach, from the requests
    source         SimulatedSource, tying it together with an LRU cache of hours
    hours, arrays  time and numpy/Arrow helpers

This package re-exports the names other code imports, so `chargeback_pipeline.sources.simulated`
stays the one import path.
"""

from chargeback_pipeline.sources.simulated.catalog import UNASSIGNED
from chargeback_pipeline.sources.simulated.deployments import (
    PAYGO_BACKEND_ID,
    PTU_BACKEND_ID,
    REGION,
    SIMULATED_DEPLOYMENT_NAMES,
    SIMULATED_DEPLOYMENTS,
    UNKNOWN,
    SimulatedDeployment,
    account_resource_id,
)
from chargeback_pipeline.sources.simulated.ground_truth import (
    DAILY_USAGE_KEY,
    EXPECTED_BYPASS_SCHEMA,
    EXPECTED_DAILY_USAGE_SCHEMA,
    EXPECTED_UNATTRIBUTED_SCHEMA,
)
from chargeback_pipeline.sources.simulated.hours import HOUR
from chargeback_pipeline.sources.simulated.profile import (
    DEFAULT_PROFILE,
    SimulationProfile,
)
from chargeback_pipeline.sources.simulated.source import SimulatedSource
from chargeback_pipeline.sources.simulated.workloads import API_ID, NON_LLM_OPERATION_ID

__all__ = [
    "API_ID",
    "DAILY_USAGE_KEY",
    "DEFAULT_PROFILE",
    "EXPECTED_BYPASS_SCHEMA",
    "EXPECTED_DAILY_USAGE_SCHEMA",
    "EXPECTED_UNATTRIBUTED_SCHEMA",
    "HOUR",
    "NON_LLM_OPERATION_ID",
    "PAYGO_BACKEND_ID",
    "PTU_BACKEND_ID",
    "REGION",
    "SIMULATED_DEPLOYMENTS",
    "SIMULATED_DEPLOYMENT_NAMES",
    "UNASSIGNED",
    "UNKNOWN",
    "SimulatedDeployment",
    "SimulatedSource",
    "SimulationProfile",
    "account_resource_id",
]
