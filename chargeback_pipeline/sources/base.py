"""The one interface every source implements. Sources know nothing of Dagster."""

from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

import pyarrow as pa

from chargeback_pipeline.storage.schemas import SOURCE_REJECT_SCHEMA


class TransientSourceError(RuntimeError):
    """The source could not answer now (throttled, unavailable, timed out, still ingesting); asking later
    may work.

    Assets retry these with backoff; any other error (a broken file, bad configuration) fails at once.
    """


class PermanentSourceError(RuntimeError):
    """Asking again gives the same answer (a refused query, a missing role, a wrong workspace or resource,
    a missing export): the fetch fails at once, never retried, and the message says what to fix."""


class SourceInputError(PermanentSourceError):
    """The source cannot prove it saw its input for a window: a missing or unreadable folder or file, an
    empty file, or a window no input covers that nobody declared empty. The message names the path."""


@dataclass(frozen=True)
class TimeWindow:
    """A half-open UTC window [start, end) on TimeGenerated."""

    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise ValueError("TimeWindow bounds must be timezone-aware (UTC)")
        if self.end <= self.start:
            raise ValueError(f"empty TimeWindow: {self.start} .. {self.end}")

    def __str__(self) -> str:
        return f"{self.start.isoformat()}/{self.end.isoformat()}"


@dataclass(frozen=True)
class Fetched:
    """What a source returns for one table and window: typed rows, and the rows it had to reject."""

    rows: pa.Table
    rejected: pa.Table = field(default_factory=SOURCE_REJECT_SCHEMA.empty_table)
    # Set when the source saw no input for the window because the user declared it empty on purpose (an
    # empty-window marker, reconciliation switched off): who declared it and why, for the run's record.
    declared_empty: str | None = None


class LogSource(Protocol):
    """Returns the rows of one window as Arrow tables in the schemas of `chargeback_pipeline.schemas`.

    Each method returns every row with window.start <= TimeGenerated < window.end (metrics: TimeStamp),
    or raises: a source never returns a partial window, nor an empty one it cannot vouch for
    (`SourceInputError`) unless the window was declared empty (`Fetched.declared_empty`). Rows that
    cannot be typed come back in `Fetched.rejected` with a reason, in the window the source can place
    them in, exactly once.
    """

    name: str

    def gateway_logs(self, window: TimeWindow) -> Fetched: ...

    def llm_logs(self, window: TimeWindow) -> Fetched: ...

    def deployment_metrics(self, window: TimeWindow) -> Fetched: ...
