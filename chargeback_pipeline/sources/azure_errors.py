"""How an Azure Monitor call failed, whether asking again can help, and the time bound of one fetch.

Transient (azure-core retries them within a call, then the step retries the fetch): throttling (429),
server errors (5xx), timeouts (408, the client's own connect and read timeouts) and connection failures
(refused, reset). Permanent (the fetch fails at once, never retried: the same question gets the same
answer): 400 (a refused query or argument), 401 (the token is not accepted), 403 (the identity lacks
its role), 404 (no such workspace, resource or route) and any other 4xx; also a credential that cannot
get a token at all.

`FetchDeadline` is the time bound of one fetch (a table's window: its count, every piece, every retry
and wait; or a window's metrics): no attempt starts, no wait ends and no answer is awaited past it.
"""

from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from time import monotonic

from azure.core.exceptions import ClientAuthenticationError

TRANSIENT_STATUSES = frozenset({408, 429})  # and every 5xx
TIME_BOUND_SETTING = "CHARGEBACK_LOG_ANALYTICS_FETCH_TIMEOUT_SECONDS"


def http_status(error: BaseException) -> int | None:
    """The HTTP status the service answered, or None when no answer came (connection, timeout, credential)."""
    status = getattr(error, "status_code", None)
    return status if isinstance(status, int) else None


def is_transient(error: BaseException) -> bool:
    if isinstance(error, FetchTimeBoundReached):
        return True
    status = http_status(error)
    if status is None:
        # No answer: a connection or timeout error is transient; a credential that could not get a token
        # (no identity configured, no `az login`) is not.
        return not isinstance(error, ClientAuthenticationError)
    return status in TRANSIENT_STATUSES or status >= 500


def service_words(error: BaseException) -> str:
    """What the service said: `HTTP 403 InsufficientAccessError: The provided credentials ...`."""
    status = http_status(error)
    parsed = getattr(error, "error", None)  # azure-core's ODataV4Format of the answer's `error` object
    code = getattr(parsed, "code", None)
    message = getattr(parsed, "message", None) or getattr(error, "message", None) or str(error)
    inner = getattr(parsed, "innererror", None)
    if isinstance(inner, dict):
        while isinstance(inner.get("innererror"), dict):
            inner = inner["innererror"]
        if inner.get("message") and inner["message"] not in message:
            message = f"{message} ({inner['message']})"
    message = " ".join(str(message).split())
    head = f"HTTP {status}" if status is not None else type(error).__name__
    return f"{head} {code}: {message}" if code else f"{head}: {message}"


class FetchTimeBoundReached(Exception):
    """Raised inside an SDK call when the next attempt or wait would end past the fetch's time bound.

    Deliberately not an AzureError: azure-core's RetryPolicy must not retry it."""


@dataclass(frozen=True)
class FetchDeadline:
    seconds: float  # the bound
    ends: float  # time.monotonic() at which the fetch gives up
    ends_at: datetime  # the same instant, UTC, for people

    @classmethod
    def starting_now(cls, seconds: float) -> "FetchDeadline":
        return cls(seconds, monotonic() + seconds, datetime.now(UTC) + timedelta(seconds=seconds))

    def remaining(self) -> float:
        return self.ends - monotonic()

    def describe(self) -> str:
        """`this fetch gives up at 10:15:03Z, in 583 s (time bound 600 s)`."""
        return (
            f"this fetch gives up at {self.ends_at:%H:%M:%S}Z, in {max(self.remaining(), 0):.0f} s "
            f"(time bound {self.seconds:g} s)"
        )

    def spent(self) -> str:
        return f"gave up: the fetch's time bound is spent ({self.seconds:g} s, {TIME_BOUND_SETTING})"


# The deadline of the fetch the current thread works for (an SDK retry hook only sees the HTTP request).
FETCH_DEADLINE: ContextVar[FetchDeadline | None] = ContextVar("fetch_deadline", default=None)

__all__ = [
    "FETCH_DEADLINE",
    "TRANSIENT_STATUSES",
    "FetchDeadline",
    "FetchTimeBoundReached",
    "http_status",
    "is_transient",
    "service_words",
]
