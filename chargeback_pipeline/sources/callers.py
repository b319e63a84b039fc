"""Who called: the named identity values a source extracts from the gateway log, and nothing else.

APIs secured with Microsoft Entra ID often need no subscription key, so ProductId and ApimSubscriptionId
are empty; an APIM `trace` policy can write the caller's identity (the token's `appid` or `azp` claim)
into a trace record's metadata, which ApiManagementGatewayLogs carries in `TraceRecords` (a dynamic
array of records: message, severity, metadata name/value pairs). That column may hold anything, so it is
never pulled: the source extracts only the metadata values of the keys named here (in the order given:
the first key present wins), else the one request header named here where the tenant logs headers
(`RequestHeaders`), and lands them as one column, CallerId. No key and no header: no column, and every
query and output is what it was without the feature.

A value is cut to MAX_CALLER_CHARACTERS + 1 characters where it is read (server-side for Log Analytics),
so at most that much ever leaves the source; a longer one is quarantined by the staging model
(`stg_apim__gateway_checked`), like a malformed identifier.
"""

import re
from dataclasses import dataclass

from chargeback_pipeline.storage.schemas import CALLER_COLUMN, gateway_log_schema

__all__ = ["CALLER_COLUMN", "NO_CALLERS", "CallerIdentity"]
MAX_CALLER_CHARACTERS = 256  # an Entra application id is 36; client names are short
CUT_CALLER_CHARACTERS = MAX_CALLER_CHARACTERS + 1  # one more, so the staging model can tell it was longer
# Names that reach a query as literals: APIM metadata names and HTTP header names are tokens.
_TRACE_KEY = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
_HEADER = re.compile(r"[A-Za-z0-9_-]{1,64}")  # a header name as APIM logs it
_QUOTE_UNSAFE = re.compile(r"['\"\\]")
MAX_TRACE_KEYS = 8


@dataclass(frozen=True)
class CallerIdentity:
    """The trace-record metadata keys (first present wins) and the request header naming the caller."""

    trace_keys: tuple[str, ...] = ()
    header: str | None = None

    def __post_init__(self) -> None:
        if len(self.trace_keys) > MAX_TRACE_KEYS:
            raise ValueError(f"at most {MAX_TRACE_KEYS} caller trace keys, got {len(self.trace_keys)}")
        for key in self.trace_keys:
            if not _TRACE_KEY.fullmatch(key):
                raise ValueError(f"not a trace-record metadata name: {key!r} (letters, digits, _ . : -; 1-64)")
        if len(set(self.trace_keys)) != len(self.trace_keys):
            raise ValueError(f"caller trace keys repeat: {', '.join(self.trace_keys)}")
        if self.header is not None and (not _HEADER.fullmatch(self.header) or _QUOTE_UNSAFE.search(self.header)):
            raise ValueError(f"not an HTTP header name: {self.header!r}")

    @property
    def configured(self) -> bool:
        return bool(self.trace_keys) or self.header is not None

    def describe(self) -> str:
        parts = [f"trace-record metadata {', '.join(self.trace_keys)}"] if self.trace_keys else []
        parts += [f"request header {self.header}"] if self.header else []
        return " then ".join(parts) or "none"

    def gateway_schema(self):
        """The schema the gateway rows land in: with CallerId only when a key or header is configured."""
        return gateway_log_schema(self.configured)


NO_CALLERS = CallerIdentity()
