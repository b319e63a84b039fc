"""How this process talks to Azure Monitor: client arguments, credentials, retries and their logging.

Throttling (429, with or without Retry-After), 5xx, timeouts and connection failures are retried by
azure-core's RetryPolicy (`retry_*` arguments; it honours Retry-After); 400, 401, 403 and 404 are not
(`sources.azure_errors`). POST is not retried by azure-core by default, so every call marks it
retryable: these queries only read. Every call runs within the time bound of its fetch
(`azure_errors.FETCH_DEADLINE`): `BoundedRetryPolicy` starts no attempt and no wait that would end past
it, and each attempt's connect and read timeouts end by it. Each retry is logged as a WARNING saying
`attempt n of at most N` and when the fetch gives up. At most `max_concurrency` (<= 5, the service's
per-user limit) queries are in flight per workspace in this process.

A loopback endpoint (a local stand-in) is used over http without any credential; any other endpoint
must be https and always authenticates (DefaultAzureCredential unless one is given).
"""

import ipaddress
import logging
from contextvars import ContextVar
from functools import partial
from threading import BoundedSemaphore, Lock
from typing import Any
from urllib.parse import urlsplit

from azure.core.credentials import AccessToken, TokenCredential
from azure.core.pipeline.policies import RetryPolicy, SansIOHTTPPolicy

from chargeback_pipeline.sources.azure_errors import FETCH_DEADLINE, FetchTimeBoundReached

# Named explicitly, not by __name__: the source used to be one module of this name, and tests and the
# docs filter its warnings (retries, partial results) by it. Every module of the package logs here.
LOGGER = logging.getLogger("chargeback_pipeline.sources.log_analytics")

DEFAULT_LOGS_ENDPOINT = "https://api.loganalytics.io/v1"
MAX_WORKSPACE_CONCURRENCY = 5  # the service queues beyond 5 concurrent queries per user, then 429s
RETRIED_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
RETRYABLE_METHODS = frozenset({"GET", "HEAD", "POST"})  # POST is safe to retry: queries only read
# azure-core hands a streamed body over in blocks of 4 KiB by default: a 20 MB answer is then ~5,000
# Python-level reads, which cost more CPU than everything else the transfer does (bench ingest: an
# hour's 308 MB took 1.3-2.2 s to receive that way, 0.16-0.2 s in 1 MiB blocks). Five answers in flight
# hold at most five such blocks beside their bodies.
RESPONSE_BLOCK_BYTES = 1 << 20


# --- endpoints and credentials ----------------------------------------------------------------------


def is_loopback(endpoint: str) -> bool:
    host = urlsplit(endpoint if "://" in endpoint else f"https://{endpoint}").hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class _NoCredential:
    """Stands in for a credential on loopback, where the authentication policy is a no-op."""

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        raise RuntimeError("loopback endpoints are never sent credentials")


# What the current thread is querying, for the retry log lines (hooks only see the HTTP request).
QUERY_LABEL: ContextVar[str] = ContextVar("log_analytics_query_label", default="an Azure Monitor request")


def _warn_on_retry(request, *, attempts: int) -> None:
    """raw_request_hook: azure-core's RetryPolicy does not log its retries, so we do."""
    retry = request.context.get("retry_count", 0)
    if retry:
        deadline = FETCH_DEADLINE.get()
        LOGGER.warning(
            "Retrying %s: attempt %d of at most %d, after a throttled, failed or timed-out attempt%s",
            QUERY_LABEL.get(), retry + 1, attempts, f"; {deadline.describe()}" if deadline else "",
        )  # fmt: skip


def _warn_on_refusal(response) -> None:
    """raw_response_hook: runs once per attempt, inside the retry loop."""
    status = response.http_response.status_code
    if status in RETRIED_STATUSES:
        retry_after = response.http_response.headers.get("Retry-After")
        LOGGER.warning(
            "%s answered HTTP %d%s for %s; azure-core retries it while retries and time remain",
            urlsplit(response.http_request.url).netloc,
            status,
            f" (Retry-After: {retry_after}s)" if retry_after else " (no Retry-After)",
            QUERY_LABEL.get(),
        )


class BoundedRetryPolicy(RetryPolicy):
    """azure-core's RetryPolicy, which gives up instead of waiting past the fetch's time bound (a backoff
    or a Retry-After that would end after it)."""

    def sleep(self, settings: dict[str, Any], transport: Any, response: Any = None) -> None:
        deadline = FETCH_DEADLINE.get()
        if deadline is not None:
            wait = (self.get_retry_after(response) if response is not None else None) or 0.0
            wait = wait or self.get_backoff_time(settings)
            if wait >= deadline.remaining():
                raise FetchTimeBoundReached(
                    f"{deadline.spent()} (the next attempt would start after {wait:.1f} s, "
                    f"{max(deadline.remaining(), 0):.1f} s before the bound)"
                )
        super().sleep(settings, transport, response)


class AttemptWithinBound(SansIOHTTPPolicy):
    """Per attempt (after the retry policy): no attempt starts past the fetch's time bound, and its
    connect and read timeouts end by it."""

    def on_request(self, request) -> None:
        deadline = FETCH_DEADLINE.get()
        if deadline is None:
            return
        remaining = deadline.remaining()
        if remaining <= 0:
            raise FetchTimeBoundReached(deadline.spent())
        options = request.context.options
        config = getattr(request.context.transport, "connection_config", None)
        for option, default in (("connection_timeout", "timeout"), ("read_timeout", "read_timeout")):
            current = options.get(option) or getattr(config, default, None)
            if not isinstance(current, int | float) or remaining < current:
                options[option] = remaining


def azure_client_arguments(
    endpoint: str,
    credential: TokenCredential | None,
    *,
    retry_total: int,
    retry_backoff_factor: float,
    retry_backoff_max: float,
    retry_timeout: float,
) -> tuple[TokenCredential, dict[str, Any]]:
    """The credential and keyword arguments of an Azure Monitor SDK client for `endpoint`.

    `retry_timeout`: seconds one call may take in all when no fetch deadline is set."""
    retries = {
        # One budget for every kind of retry; azure-core otherwise stops status retries at 3.
        "retry_total": retry_total,
        "retry_status": retry_total,
        "retry_connect": retry_total,
        "retry_read": retry_total,
        "retry_backoff_factor": retry_backoff_factor,
        "retry_backoff_max": retry_backoff_max,
        "timeout": retry_timeout,  # RetryPolicy: total seconds for one call, all attempts and waits
    }
    options: dict[str, Any] = {
        "retry_policy": BoundedRetryPolicy(**retries),
        "per_retry_policies": [AttemptWithinBound()],
        "raw_request_hook": partial(_warn_on_retry, attempts=retry_total + 1),
        "raw_response_hook": _warn_on_refusal,
        "connection_data_block_size": RESPONSE_BLOCK_BYTES,
    }
    if is_loopback(endpoint):
        return _NoCredential(), options | {"authentication_policy": SansIOHTTPPolicy()}
    if not endpoint.startswith("https://"):
        raise ValueError(f"{endpoint!r}: only loopback endpoints may be used without https")
    if credential is None:
        from azure.identity import DefaultAzureCredential  # imported late: slow, and unused on loopback

        credential = DefaultAzureCredential()
    return credential, options


def metrics_audience(endpoint: str) -> str:
    """The token audience of a regional metrics endpoint (sovereign clouds differ), e.g.
    https://eastus.metrics.monitor.azure.com -> https://metrics.monitor.azure.com."""
    host = urlsplit(endpoint).hostname or ""
    _, _, cloud = host.partition(".metrics.")
    return f"https://metrics.{cloud}" if cloud else "https://metrics.monitor.azure.com"


# --- concurrency ------------------------------------------------------------------------------------

_WORKSPACE_SLOTS: dict[str, BoundedSemaphore] = {}
_WORKSPACE_SLOTS_LOCK = Lock()


def workspace_slots(workspace_id: str, limit: int) -> BoundedSemaphore:
    """The process-wide semaphore of a workspace; the first source to ask sets its size."""
    with _WORKSPACE_SLOTS_LOCK:
        return _WORKSPACE_SLOTS.setdefault(workspace_id.lower(), BoundedSemaphore(limit))
