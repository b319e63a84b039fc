"""An Azure Monitor metrics batch endpoint on loopback: `POST /subscriptions/{sub}/metrics:getBatch`.

It answers from a pyarrow table in DEPLOYMENT_METRICS_SCHEMA (hourly totals per resource, deployment
and metric), honouring `starttime`, `endtime`, `interval`, `aggregation` (Total: the rows' sum; Maximum:
their largest, as the PTU utilisation metric is read), `metricnames`, `filter` and `top`, in the
service's JSON shape so the real `MetricsClient` parses it unmodified. Like the service it names
dimensions in lower case in `metadatavalues`, returns a point for every interval (without `total`
where there was no data), and keeps only the top 10 series of a filtered query unless `top` says more.
Faults can be injected: any error status for the next requests or for all (e.g. 403 for an identity
without Monitoring Reader, 404 for a resource that does not exist, 429 with or without Retry-After).
"""

import json
import re
import threading
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler
from urllib.parse import parse_qs, urlsplit

import pyarrow as pa
import pyarrow.compute as pc

from chargeback_pipeline.standins import BackgroundHTTPServer, send_json
from chargeback_pipeline.standins.log_analytics import error_body, parse_duration, parse_timespan
from chargeback_pipeline.storage.schemas import DEPLOYMENT_METRICS_SCHEMA

# The metrics API's error codes for the statuses tests inject.
ERROR_CODES = {
    400: "BadRequest",
    401: "InvalidAuthenticationToken",
    403: "AuthorizationFailed",
    404: "ResourceNotFound",
    429: "TooManyRequests",
    503: "ServiceUnavailable",
}
DIMENSION = "ModelDeploymentName"
DEFAULT_TOP = 10  # the service's default number of series when a filter is given
_BATCH_PATH = re.compile(r"/subscriptions/(?P<subscription>[^/]+)/metrics:getBatch")
_FILTER_CLAUSE = re.compile(r"\s*(?P<dimension>\w+)\s+eq\s+'(?P<value>[^']*)'\s*")


class BadMetricsRequest(ValueError):
    pass


@dataclass(frozen=True)
class _Query:
    start: datetime
    end: datetime
    interval: timedelta
    interval_text: str
    namespace: str
    metric_names: list[str]
    split: bool  # one series per deployment (filter given) or one rolled-up series
    deployments: set[str] | None  # None: every deployment
    top: int
    aggregation: str  # "total" or "maximum": the point's key in the answer


def _parse_query(url: str) -> _Query:
    params = {name: values[0] for name, values in parse_qs(urlsplit(url).query).items()}
    try:
        start, end = parse_timespan(f"{params['starttime']}/{params['endtime']}", datetime.now(UTC))
        interval_text = params.get("interval", "PT1H")
        interval = parse_duration(interval_text)
    except (KeyError, ValueError) as error:
        raise BadMetricsRequest(f"bad time range or interval: {error}") from error
    aggregation = params.get("aggregation", "Total").lower()
    if aggregation not in ("total", "maximum"):
        raise BadMetricsRequest("this stand-in only serves the Total and Maximum aggregations")
    split, deployments = _parse_filter(params.get("filter"))
    return _Query(
        start=start,
        end=end,
        interval=interval,
        interval_text=interval_text,
        namespace=params.get("metricnamespace", ""),
        metric_names=[name for name in params.get("metricnames", "").split(",") if name],
        split=split,
        deployments=deployments,
        top=int(params.get("top", DEFAULT_TOP)),
        aggregation=aggregation,
    )


def _parse_filter(text: str | None) -> tuple[bool, set[str] | None]:
    """`ModelDeploymentName eq '*'`, or `... eq 'a' or ... eq 'b'`: the only filters it understands."""
    if not text:
        return False, None
    values = set()
    for clause in re.split(r"\s+or\s+", text.strip()):
        match = _FILTER_CLAUSE.fullmatch(clause)
        if match is None or match["dimension"].lower() != DIMENSION.lower():
            raise BadMetricsRequest(f"unsupported filter: {text!r}")
        values.add(match["value"])
    return True, None if "*" in values else values


def _iso(instant: datetime) -> str:
    return instant.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class MetricsStandIn(BackgroundHTTPServer):
    """Local Azure Monitor metrics for Azure OpenAI resources; `endpoint` is the regional endpoint."""

    def __init__(self, metrics: pa.Table | None = None, region: str = "swedencentral", port: int = 0) -> None:
        super().__init__(port)
        self.region = region
        self._lock = threading.Lock()
        self._metrics = DEPLOYMENT_METRICS_SCHEMA.empty_table()
        self._faults: deque[tuple[int, float | None]] = deque()
        self._always: int | None = None
        self.requests_received = 0
        if metrics is not None:
            self.load(metrics)

    @property
    def endpoint(self) -> str:
        return self.base_url

    def load(self, metrics: pa.Table) -> None:
        with self._lock:
            self._metrics = metrics.select(DEPLOYMENT_METRICS_SCHEMA.names).cast(DEPLOYMENT_METRICS_SCHEMA)

    def fail_next(self, count: int, status: int = 503, retry_after: float | None = None) -> None:
        """Answer the next `count` requests with `status` (and a Retry-After header when given)."""
        with self._lock:
            self._faults.extend((status, retry_after) for _ in range(count))

    def fail_always(self, status: int = 503) -> None:
        with self._lock:
            self._always = status

    def heal(self) -> None:
        with self._lock:
            self._faults.clear()
            self._always = None

    def handle(self, handler: BaseHTTPRequestHandler, body: bytes) -> None:
        with self._lock:
            self.requests_received += 1
            metrics = self._metrics
            fault = self._faults.popleft() if self._faults else (None if self._always is None else (self._always, None))
        if fault is not None:
            status, retry_after = fault
            headers = {} if retry_after is None else {"Retry-After": f"{retry_after:g}"}
            payload = error_body(status, f"injected fault (HTTP {status})", codes=ERROR_CODES)
            send_json(handler, status, payload, headers)
            return
        match = _BATCH_PATH.fullmatch(urlsplit(handler.path).path)
        if match is None:
            send_json(handler, 404, error_body(404, f"no route for {handler.path}"))
            return
        try:
            query = _parse_query(handler.path)
            resource_ids = json.loads(body or b"{}").get("resourceids") or []
            for resource_id in resource_ids:
                if f"/subscriptions/{match['subscription']}/".lower() not in resource_id.lower():
                    raise BadMetricsRequest(f"{resource_id} is not in subscription {match['subscription']}")
        except (BadMetricsRequest, ValueError) as error:
            send_json(handler, 400, error_body(400, str(error)))
            return
        values = [self._resource_answer(metrics, query, resource_id) for resource_id in resource_ids]
        send_json(handler, 200, {"values": values})

    def _resource_answer(self, metrics: pa.Table, query: _Query, resource_id: str) -> dict:
        in_range = metrics.filter(
            pc.and_(
                pc.equal(pc.utf8_lower(metrics["ResourceId"]), resource_id.lower()),
                pc.and_(
                    pc.greater_equal(metrics["TimeStamp"], pa.scalar(query.start, metrics["TimeStamp"].type)),
                    pc.less(metrics["TimeStamp"], pa.scalar(query.end, metrics["TimeStamp"].type)),
                ),
            )
        ).to_pylist()
        return {
            "starttime": _iso(query.start),
            "endtime": _iso(query.end),
            "interval": query.interval_text,
            "namespace": query.namespace,
            "resourceregion": self.region,
            "resourceid": resource_id,
            "value": [self._metric(query, resource_id, name, in_range) for name in query.metric_names],
        }

    def _metric(self, query: _Query, resource_id: str, name: str, rows: list[dict]) -> dict:
        totals: dict[str, dict[datetime, float]] = {}
        for row in rows:
            if row["MetricName"] != name:
                continue
            deployment = row[DIMENSION]
            if query.deployments is not None and deployment not in query.deployments:
                continue
            key = deployment if query.split else ""
            bucket = query.start + (row["TimeStamp"] - query.start) // query.interval * query.interval
            series = totals.setdefault(key, {})
            value = float(row["Total"])
            if bucket not in series:
                series[bucket] = value
            elif query.aggregation == "maximum":
                series[bucket] = max(series[bucket], value)
            else:
                series[bucket] += value
        ranked = sorted(totals.items(), key=lambda item: -sum(item[1].values()))
        if query.split:
            ranked = ranked[: query.top]
        return {
            "id": f"{resource_id}/providers/Microsoft.Insights/metrics/{name}",
            "type": "Microsoft.Insights/metrics",
            "name": {"value": name, "localizedValue": name},
            "displayDescription": f"{name} (stand-in)",
            "unit": "Count",
            "errorCode": "Success",
            "timeseries": [self._series(query, key, points) for key, points in ranked],
        }

    def _series(self, query: _Query, deployment: str, points: dict[datetime, float]) -> dict:
        dimension = DIMENSION.lower()  # the service answers dimension names in lower case
        metadata = [{"name": {"value": dimension, "localizedValue": dimension}, "value": deployment}]
        data = []
        bucket = query.start
        while bucket < query.end:
            point: dict = {"timeStamp": _iso(bucket)}
            if bucket in points:
                point[query.aggregation] = points[bucket]
            data.append(point)
            bucket += query.interval
        return {"metadatavalues": metadata if query.split else [], "data": data}
