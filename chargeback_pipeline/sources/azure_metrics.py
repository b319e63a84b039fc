"""Hourly token totals per Azure OpenAI deployment, from Azure Monitor platform metrics.

Uses `azure-monitor-querymetrics`' `MetricsClient` (regional endpoint, batch API): metric namespace
`Microsoft.CognitiveServices/accounts`, `ProcessedPromptTokens` and `GeneratedTokens`, aggregation
Total, 1 hour granularity, split by deployment with `ModelDeploymentName eq '*'`. In a second call per
batch, the PTU deployments' `AzureOpenAIProvisionedManagedUtilizationV2` with aggregation Maximum at 1
minute granularity (PT1M: PTU capacity is sold per minute, and an hour's maximum cannot tell one busy
minute from a saturated hour), one row per minute, landed in `Total` as whole percent, rounded;
diagnostic settings cannot export it, so this API is the only way to it. Pay-as-you-go deployments
simply have no series. (Azure Monitor metrics REST API 2024-02-01, `metrics:getBatch`; the metric's
supported grains are listed in "Supported metrics for Microsoft.CognitiveServices/accounts".)

Decisions:
- An hour without a data point (or a point without `total`) yields no row: "no traffic" and "no
  metric emitted" look the same in the API, and downstream treats a missing row as zero.
- The batch answer carries no resource id, so results are matched to resource ids by order; ids are
  sent per subscription (the batch URL is per subscription), at most 50 per call (the API's limit).
- A filtered query returns only the top `max_series` series (the service's default is 10!), so a
  metric that comes back with `max_series` series may be cut short: that raises instead of landing
  a partial hour.
- A failed call is transient (429, 5xx, timeouts, connection failures, the fetch's time bound spent:
  the step retries it) or permanent (400, 401, 403, 404: it fails at once, saying what to fix, e.g. the
  Monitoring Reader role on the resources for a 403); see `azure_errors`.
"""

import json
from collections.abc import Mapping, Sequence
from datetime import timedelta
from itertools import groupby
from typing import Any

import pyarrow as pa
from azure.core.exceptions import AzureError
from azure.monitor.querymetrics import MetricsClient

from chargeback_pipeline.sources.azure_errors import FetchTimeBoundReached, http_status, is_transient, service_words
from chargeback_pipeline.sources.base import Fetched, PermanentSourceError, TimeWindow, TransientSourceError
from chargeback_pipeline.sources.metric_bounds import metric_problem
from chargeback_pipeline.storage.schemas import (
    DEPLOYMENT_METRICS_SCHEMA,
    METRIC_PTU_UTILIZATION,
    RECONCILED_METRICS,
    SOURCE_REJECT_SCHEMA,
)

METRIC_NAMESPACE = "Microsoft.CognitiveServices/accounts"
DEPLOYMENT_DIMENSION = "ModelDeploymentName"
SPLIT_BY_DEPLOYMENT = f"{DEPLOYMENT_DIMENSION} eq '*'"
MAX_RESOURCES_PER_BATCH = 50
HOURLY = timedelta(hours=1)  # token totals: the reconciliation's grain
PER_MINUTE = timedelta(minutes=1)  # PTU utilisation: the grain PTU capacity is sold at
SOURCE_TABLE = "deployment_metrics"


class MetricsQueryError(RuntimeError):
    """The metrics API failed or answered something that cannot be proven complete."""


class TransientMetricsError(MetricsQueryError, TransientSourceError):
    """Throttled, unavailable, timed out or unreachable, still after the SDK's retries: the step retries."""


class PermanentMetricsError(MetricsQueryError, PermanentSourceError):
    """Refused (400, 401, 403, 404) or cut short by configuration: asking again gives the same answer."""


def metrics_failure(error: BaseException, batch: Sequence[str], window: TimeWindow, endpoint: str) -> MetricsQueryError:
    """The error to raise for a failed metrics call of `batch` in `window`."""
    said = service_words(error)
    where = f"metrics query failed for {', '.join(batch)} in window {window}: {said}"
    if is_transient(error):
        return TransientMetricsError(where)
    status = http_status(error)
    if status == 403:
        fix = (
            "the identity lacks the role Monitoring Reader on the Azure OpenAI resource(s) "
            f"{', '.join(batch)}: assign it (README, Production: the roles the identity needs)"
        )
    elif status == 404 or status == 400:
        fix = (
            "check CHARGEBACK_OPENAI_RESOURCE_IDS (each /subscriptions/<sub>/resourceGroups/<rg>/providers/"
            "Microsoft.CognitiveServices/accounts/<name>) and CHARGEBACK_METRICS_ENDPOINT "
            f"({endpoint or 'unset'}: https://<the resources' region>.metrics.monitor.azure.com)"
        )
    elif status == 401 or status is None:
        fix = (
            "the identity is not authenticated. Check the identity DefaultAzureCredential uses (managed or "
            "workload identity, AZURE_CLIENT_ID, `az login`) and that CHARGEBACK_METRICS_ENDPOINT "
            f"({endpoint or 'unset'}) is in the identity's cloud"
        )
    else:
        fix = "the service refused the query"
    return PermanentMetricsError(f"{where}. Not retried: {fix}")


def subscription_of(resource_id: str) -> str:
    parts = resource_id.strip("/").split("/")
    if len(parts) < 2 or parts[0].lower() != "subscriptions":
        raise ValueError(f"not an Azure resource id: {resource_id!r}")
    return parts[1].lower()


def _batches(resource_ids: Sequence[str]) -> list[list[str]]:
    """Consecutive runs of one subscription, cut to the batch size; order is kept for matching."""
    batches = []
    for _, run in groupby(resource_ids, key=subscription_of):
        run = list(run)
        batches += [run[i : i + MAX_RESOURCES_PER_BATCH] for i in range(0, len(run), MAX_RESOURCES_PER_BATCH)]
    return batches


def _deployment_of(metadata: Mapping[str, str]) -> str | None:
    # The service answers dimension names in lower case; match them case-insensitively.
    return next((value for name, value in metadata.items() if name.lower() == DEPLOYMENT_DIMENSION.lower()), None)


class DeploymentMetricsReader:
    """Reads DEPLOYMENT_METRICS_SCHEMA rows for a window through a configured `MetricsClient`.

    `call_options` are passed to every `query_resources` call (per-call retry settings, hooks).
    """

    def __init__(
        self,
        client: MetricsClient,
        resource_ids: Sequence[str],
        *,
        max_series: int = 1000,
        call_options: Mapping[str, Any] | None = None,
        endpoint: str = "",
    ) -> None:
        self._client = client
        self._resource_ids = list(resource_ids)
        for resource_id in self._resource_ids:
            subscription_of(resource_id)  # fail at construction on a malformed id
        self._max_series = max_series
        self._call_options = dict(call_options or {})
        self._endpoint = endpoint

    def read(self, window: TimeWindow) -> Fetched:
        rows: list[dict] = []
        rejected: list[dict] = []
        for batch in _batches(self._resource_ids):
            for names, aggregation, grain in (
                (list(RECONCILED_METRICS), "Total", HOURLY),
                ([METRIC_PTU_UTILIZATION], "Maximum", PER_MINUTE),
            ):
                results = self._query(batch, window, names, aggregation, grain)
                for resource_id, result in zip(batch, results, strict=True):
                    for metric in result.metrics:
                        self._collect(resource_id, metric, window, rows, rejected)
        rows.sort(key=lambda row: (row["TimeStamp"], row["ResourceId"], row["ModelDeploymentName"], row["MetricName"]))
        return Fetched(
            rows=pa.Table.from_pylist(rows, schema=DEPLOYMENT_METRICS_SCHEMA),
            rejected=pa.Table.from_pylist(rejected, schema=SOURCE_REJECT_SCHEMA),
        )

    def _query(self, batch: list[str], window: TimeWindow, names: list[str], aggregation: str, grain) -> list:
        try:
            results = self._client.query_resources(
                resource_ids=batch,
                metric_namespace=METRIC_NAMESPACE,
                metric_names=names,
                timespan=(window.start, window.end),
                granularity=grain,
                aggregations=[aggregation],
                filter=SPLIT_BY_DEPLOYMENT,
                max_results=self._max_series,
                **self._call_options,
            )
        except (AzureError, FetchTimeBoundReached) as error:
            raise metrics_failure(error, batch, window, self._endpoint) from error
        if len(results) != len(batch):
            raise TransientMetricsError(f"metrics API answered {len(results)} results for {len(batch)} resources")
        return results

    def _collect(self, resource_id: str, metric, window: TimeWindow, rows: list, rejected: list) -> None:
        if len(metric.timeseries) >= self._max_series:
            raise PermanentMetricsError(
                f"{metric.name} of {resource_id} returned {len(metric.timeseries)} series, the max_series "
                f"limit: deployments may be missing; raise max_series"
            )
        for series in metric.timeseries:
            deployment = _deployment_of(series.metadata_values)
            for point in series.data:
                value = point.maximum if metric.name == METRIC_PTU_UTILIZATION else point.total
                if value is None or not window.start <= point.timestamp < window.end:
                    continue  # no data that hour (see module docstring), or another window's hour
                if metric.name == METRIC_PTU_UTILIZATION:
                    value = round(value)  # a percentage: whole percent is all saturation needs
                row = {
                    "TimeStamp": point.timestamp,
                    "ResourceId": resource_id,
                    "ModelDeploymentName": deployment,
                    "MetricName": metric.name,
                    "Total": value,
                }
                reason = self._problem(deployment, value)
                if reason is None:
                    rows.append(row | {"Total": int(value)})
                else:
                    record = {**row, "TimeStamp": point.timestamp.isoformat()}
                    rejected.append(
                        {
                            "source_table": SOURCE_TABLE,
                            "reason": reason,
                            "origin": resource_id,
                            "record": json.dumps(record),
                            "placed_at": point.timestamp,
                        }
                    )

    @staticmethod
    def _problem(deployment: str | None, total: float) -> str | None:
        if deployment is None:
            return f"series without a {DEPLOYMENT_DIMENSION} dimension"
        return metric_problem(total)  # whole, not negative, not absurd (sources/metric_bounds.py)
