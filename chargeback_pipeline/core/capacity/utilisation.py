"""Hourly PTU utilisation: per PTU deployment, the weighted tokens it served against its capacity, the
demand it turned away (requests spilled to its pay-as-you-go twin, 429s it answered) and, where Azure
Monitor reports it, the deployment's own utilisation metric.

Weighted tokens are prompt + output_token_weight x completion tokens (the model's PTU weight); capacity is
ptu_count x the model's ptu_input_tokens_per_minute x 60 weighted tokens per hour, both from the pricing
file. An hour is saturated when it used its capacity (token-based or by Azure's metric reaching 100 % in
any minute) or turned demand away (spillover or 429s from the PTU backend): each is the PTU saying "full".

PTU capacity is sold per minute, so the hour also keeps its minutes: Azure's per-minute utilisation
(maximum, p95 and p99 of the minutes reported, nearest rank, and the minutes at 100 %), the served weighted
tokens per minute (maximum, p95, p99), and, for the rightsizing's what-if, each minute's demand (served +
spilled weighted tokens) and 429s.
"""

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from fractions import Fraction

import pyarrow as pa

from chargeback_pipeline.core.billing.pricing import BackendKind, Pricing, PricingError
from chargeback_pipeline.storage.schemas import UTC_TIMESTAMP

SATURATED_PERCENT = 100
MINUTES_PER_HOUR = 60
UNKNOWN_DEPLOYMENT = "unknown"  # the attribution's deployment of a request without an LLM record

PTU_UTILIZATION_SCHEMA = pa.schema(
    [
        ("usage_hour", UTC_TIMESTAMP),
        ("backend_id", pa.string()),
        ("deployment_name", pa.string()),
        ("model_name", pa.string()),
        ("ptu_count", pa.int64()),
        ("capacity_weighted_tokens", pa.int64()),
        ("served_requests", pa.int64()),
        ("served_prompt_tokens", pa.int64()),
        ("served_completion_tokens", pa.int64()),
        ("served_weighted_tokens", pa.int64()),
        ("utilization_percent", pa.float64()),
        ("throttled_requests", pa.int64()),
        ("spillover_requests", pa.int64()),
        ("spillover_prompt_tokens", pa.int64()),
        ("spillover_completion_tokens", pa.int64()),
        ("spillover_weighted_tokens", pa.int64()),
        ("demand_weighted_tokens", pa.int64()),
        ("azure_utilization_percent", pa.int64()),  # the hour's maximum; null where Azure Monitor has none
        ("saturated", pa.bool_()),
        ("azure_p95_utilization_percent", pa.int64()),  # of the minutes reported; null without the metric
        ("azure_p99_utilization_percent", pa.int64()),
        ("azure_minutes_reported", pa.int64()),
        ("azure_saturated_minutes", pa.int64()),  # minutes at 100 %; null without the metric
        ("max_minute_weighted_tokens", pa.int64()),  # served weighted tokens per minute: the busiest minute
        ("p95_minute_weighted_tokens", pa.int64()),
        ("p99_minute_weighted_tokens", pa.int64()),
        ("minute_demand_weighted_tokens", pa.list_(pa.int64(), MINUTES_PER_HOUR)),  # served + spilled, per minute
        ("minute_throttled_requests", pa.list_(pa.int64(), MINUTES_PER_HOUR)),  # 429s of the PTU, per minute
    ]
)
MINUTE_COLUMNS = ("minute_demand_weighted_tokens", "minute_throttled_requests")


@dataclass(frozen=True)
class PtuSizing:
    """One PTU deployment as the pricing file sizes it in a given hour."""

    backend_id: str
    deployment_name: str
    model_name: str
    resource_id: str | None
    ptu_count: int
    tokens_per_minute_per_ptu: int
    output_token_weight: Fraction
    spillover_backends: tuple[str, ...]  # pay-as-you-go backends hosting a deployment of the same name

    @property
    def tokens_per_ptu_hour(self) -> int:
        return self.tokens_per_minute_per_ptu * 60

    @property
    def capacity(self) -> int:
        return self.ptu_count * self.tokens_per_ptu_hour

    def weighted(self, prompt_tokens: int, completion_tokens: int) -> Fraction:
        return prompt_tokens + self.output_token_weight * completion_tokens


def ptu_sizings(pricing: Pricing, hour: datetime, pricing_file: str) -> list[PtuSizing]:
    """Every PTU deployment of the pricing file deployed in `hour`. A model without a capacity figure is
    an error naming the setting to add (`pricing_file` is said first, so the user knows which file)."""
    paygo_backends = [bid for bid, backend in pricing.backends.items() if backend.kind == BackendKind.paygo]
    sizings = []
    for backend_id, backend in sorted(pricing.backends.items()):
        if backend.kind != BackendKind.ptu:
            continue
        for name, deployment in sorted(backend.deployments.items()):
            if not deployment.is_deployed(hour):
                continue
            model = pricing.model(deployment.model)
            if model.ptu_input_tokens_per_minute is None:
                raise PricingError(
                    f"{pricing_file}: pricing.models.{deployment.model}.ptu_input_tokens_per_minute is needed to "
                    f"measure the utilisation of PTU deployment pricing.backends.{backend_id}.deployments.{name} "
                    f"(input tokens per minute one PTU sustains, from Microsoft's PTU sizing table); no default "
                    f"is known for model {deployment.model!r}"
                )
            assert model.output_token_weight is not None  # required of PTU models when the file loads
            spill = tuple(b for b in paygo_backends if name in pricing.backends[b].deployments)
            sizings.append(
                PtuSizing(
                    backend_id=backend_id,
                    deployment_name=name,
                    model_name=deployment.model,
                    resource_id=backend.resource_id,
                    ptu_count=deployment.rate_on(hour.date()).ptu_count,
                    tokens_per_minute_per_ptu=model.ptu_input_tokens_per_minute,
                    output_token_weight=Fraction(model.output_token_weight),
                    spillover_backends=spill,
                )
            )
    return sizings


def azure_utilization(metric_rows: Iterable[Mapping], sizings: list[PtuSizing]) -> dict[tuple[str, str], list[int]]:
    """(backend_id, deployment) -> the utilisation percent of each minute reported (TimeStamp order), from
    utilisation metric rows (TimeStamp, ResourceId, ModelDeploymentName, Total; one per minute at PT1M). A
    row's resource is matched to a backend by the pricing file's resource_id (case-insensitive) or, without
    one, by the ARM id's account name = backend id."""
    by_resource: dict[tuple[str, str], PtuSizing] = {}
    for sizing in sizings:
        resource = (sizing.resource_id or sizing.backend_id).lower()
        by_resource[(resource, sizing.deployment_name)] = sizing
        by_resource.setdefault((sizing.backend_id.lower(), sizing.deployment_name), sizing)
    minutes: dict[tuple[str, str], dict] = {}
    for row in metric_rows:
        resource = (row["ResourceId"] or "").lower()
        sizing = by_resource.get((resource, row["ModelDeploymentName"])) or by_resource.get(
            (resource.rsplit("/", 1)[-1], row["ModelDeploymentName"])
        )
        if sizing is None or row["Total"] is None:
            continue
        series = minutes.setdefault((sizing.backend_id, sizing.deployment_name), {})
        series[row["TimeStamp"]] = max(series.get(row["TimeStamp"], 0), int(row["Total"]))
    return {key: [series[moment] for moment in sorted(series)] for key, series in minutes.items()}


def _percentile(values: list, percent: int) -> int | None:
    """Nearest rank: always one of the values (a minute that happened)."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(math.ceil(percent * len(ordered) / 100), 1) - 1]


def _per_minute(rows: Iterable[Mapping], column: str) -> list[int]:
    values = [0] * MINUTES_PER_HOUR
    for row in rows:
        values[int(row["minute_of_hour"])] += int(row[column])
    return values


def _weighted_minutes(sizing: "PtuSizing", rows: Iterable[Mapping]) -> list[int]:
    values = [0] * MINUTES_PER_HOUR
    for row in rows:
        weighted = sizing.weighted(int(row["prompt_tokens"]), int(row["completion_tokens"]))
        values[int(row["minute_of_hour"])] += _whole(weighted)
    return values


def _whole(value: Fraction) -> int:
    return round(value)  # weighted tokens: half to even, as Python rounds


def hour_utilisation(
    hour: datetime,
    sizings: list[PtuSizing],
    traffic: Iterable[Mapping],
    azure: Mapping[tuple[str, str], list[int]],
    minute_traffic: Iterable[Mapping] = (),
) -> pa.Table:
    """One row per PTU deployment for `hour`. `traffic`: per (backend_id, deployment_name) the hour's
    requests, throttled_requests (429), prompt_tokens and completion_tokens (`marts/fct_hourly_backend_traffic`);
    `minute_traffic`: the same per minute_of_hour, successful requests' tokens (`marts/fct_minute_backend_traffic`);
    `azure`: the minutes' utilisation percents (`azure_utilization`)."""
    by_backend = {(row["backend_id"], row["deployment_name"]): row for row in traffic}
    minutes_of: dict[tuple[str, str], list[Mapping]] = {}
    for row in minute_traffic:
        minutes_of.setdefault((row["backend_id"], row["deployment_name"]), []).append(row)
    empty = {"requests": 0, "throttled_requests": 0, "prompt_tokens": 0, "completion_tokens": 0}
    rows = []
    for sizing in sizings:
        served = by_backend.get((sizing.backend_id, sizing.deployment_name), empty)
        spilled = [by_backend.get((b, sizing.deployment_name), empty) for b in sizing.spillover_backends]
        spill_requests = sum(int(s["requests"]) for s in spilled)
        spill_prompt = sum(int(s["prompt_tokens"]) for s in spilled)
        spill_completion = sum(int(s["completion_tokens"]) for s in spilled)
        served_weighted = sizing.weighted(int(served["prompt_tokens"]), int(served["completion_tokens"]))
        spill_weighted = sizing.weighted(spill_prompt, spill_completion)
        utilization = round(float(100 * served_weighted / sizing.capacity), 3)
        throttled = int(served["throttled_requests"])
        # A 429 without an LLM record names no deployment; on a backend with one PTU deployment it is that one's.
        if [s.backend_id for s in sizings].count(sizing.backend_id) == 1:
            throttled += int(by_backend.get((sizing.backend_id, UNKNOWN_DEPLOYMENT), empty)["throttled_requests"])
        reported = azure.get((sizing.backend_id, sizing.deployment_name), [])
        measured = max(reported) if reported else None
        saturated_minutes = sum(percent >= SATURATED_PERCENT for percent in reported) if reported else None
        saturated = (
            utilization >= SATURATED_PERCENT
            or (measured is not None and measured >= SATURATED_PERCENT)
            or spill_requests > 0
            or throttled > 0
        )
        served_minutes = _weighted_minutes(sizing, minutes_of.get((sizing.backend_id, sizing.deployment_name), []))
        demand_minutes = list(served_minutes)
        for backend in sizing.spillover_backends:
            spilled_minutes = _weighted_minutes(sizing, minutes_of.get((backend, sizing.deployment_name), []))
            demand_minutes = [a + b for a, b in zip(demand_minutes, spilled_minutes, strict=True)]
        throttled_minutes = _per_minute(
            minutes_of.get((sizing.backend_id, sizing.deployment_name), []), "throttled_requests"
        )
        rows.append(
            {
                "usage_hour": hour,
                "backend_id": sizing.backend_id,
                "deployment_name": sizing.deployment_name,
                "model_name": sizing.model_name,
                "ptu_count": sizing.ptu_count,
                "capacity_weighted_tokens": sizing.capacity,
                "served_requests": int(served["requests"]) - int(served["throttled_requests"]),
                "served_prompt_tokens": int(served["prompt_tokens"]),
                "served_completion_tokens": int(served["completion_tokens"]),
                "served_weighted_tokens": _whole(served_weighted),
                "utilization_percent": utilization,
                "throttled_requests": throttled,
                "spillover_requests": spill_requests,
                "spillover_prompt_tokens": spill_prompt,
                "spillover_completion_tokens": spill_completion,
                "spillover_weighted_tokens": _whole(spill_weighted),
                "demand_weighted_tokens": _whole(served_weighted + spill_weighted),
                "azure_utilization_percent": measured,
                "saturated": saturated,
                "azure_p95_utilization_percent": _percentile(reported, 95),
                "azure_p99_utilization_percent": _percentile(reported, 99),
                "azure_minutes_reported": len(reported),
                "azure_saturated_minutes": saturated_minutes,
                "max_minute_weighted_tokens": max(served_minutes),
                "p95_minute_weighted_tokens": _percentile(served_minutes, 95),
                "p99_minute_weighted_tokens": _percentile(served_minutes, 99),
                "minute_demand_weighted_tokens": demand_minutes,
                "minute_throttled_requests": throttled_minutes,
            }
        )
    return pa.Table.from_pylist(rows, schema=PTU_UTILIZATION_SCHEMA)
