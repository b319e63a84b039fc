"""What every source's Dagster resource has in common. The sources themselves know nothing of Dagster:
each source folder keeps its Dagster glue in one `resource.py`, a subclass of `LogSourceResource`."""

import dagster as dg
from pydantic import Field, PrivateAttr, model_validator

from chargeback_pipeline.sources.base import LogSource
from chargeback_pipeline.sources.callers import CallerIdentity


class LogSourceResource(dg.ConfigurableResource):
    """The APIM logs and deployment metrics the raw assets land. Subclasses build their source."""

    # LLM rows are pulled for the hour plus this margin on each side, to join records logged across
    # the hour boundary from their gateway row.
    llm_join_overlap_minutes: int = Field(default=10, ge=0, le=60)
    # A fetch that still fails after the source's own retries (TransientSourceError) retries the step
    # this many times, after this delay doubling each time (30, 60, 120 s). Other errors (a refused
    # query, a missing role, a missing export: PermanentSourceError) fail at once.
    step_retries: int = Field(default=3, ge=0, le=10)
    step_retry_delay_seconds: float = Field(default=30.0, ge=0, le=3600)
    # Who called (sources/callers.py): the trace-record metadata names whose value identifies the calling
    # application, first present wins (CHARGEBACK_CALLER_TRACE_KEYS=appid,azp), and optionally one request
    # header where the tenant logs headers (CHARGEBACK_CALLER_HEADER). Neither: no caller dimension.
    caller_trace_keys: list[str] = []
    caller_header: str | None = None

    _source: LogSource | None = PrivateAttr(default=None)

    def source(self) -> LogSource:
        # One source per resource instance, so a ranged run reuses clients and parsed files.
        if self._source is None:
            self._source = self.build_source()
        return self._source

    def caller_identity(self) -> CallerIdentity:
        return CallerIdentity(tuple(self.caller_trace_keys), self.caller_header or None)

    @model_validator(mode="after")
    def _valid_caller_identity(self) -> "LogSourceResource":
        try:
            self.caller_identity()
        except ValueError as error:
            raise ValueError(f"CHARGEBACK_CALLER_TRACE_KEYS / CHARGEBACK_CALLER_HEADER: {error}") from None
        return self

    def build_source(self) -> LogSource:
        raise NotImplementedError(f"{type(self).__name__} must build its source")

    def reconciliation_off_reason(self) -> str | None:
        """Why this source reads no deployment metrics on purpose (so nothing can be reconciled), or None."""
        return None

    def fetch_time_bound_seconds(self) -> float | None:
        """The most one fetch of this source takes before it gives up (retries and waits included), for
        the step's retry messages; None when the source has no such bound (it does not retry)."""
        return None

    def step_time_bound_seconds(self) -> float | None:
        """The most a step spends on a source that keeps failing transiently: every step attempt's fetch
        bound plus the waits between them (30 + 60 + 120 s by default); None without a fetch bound."""
        bound = self.fetch_time_bound_seconds()
        if bound is None:
            return None
        waits = self.step_retry_delay_seconds * (2**self.step_retries - 1)
        return (self.step_retries + 1) * bound + waits


class LogTablesResource(LogSourceResource):
    """A source that reads the APIM diagnostic tables by name (an export folder, a workspace)."""

    gateway_table: str = "ApiManagementGatewayLogs"
    llm_table: str = "ApiManagementGatewayLlmLog"
