"""The KQL queries of the source: the `.kql` files beside this module (package data), bound to a table
and a time window.

Only values this module formats itself reach the query text: a table name that passed validation and
datetime literals written from timezone-aware datetimes, never caller-supplied text.
"""

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from string import Template

import pyarrow as pa

from chargeback_pipeline.sources.base import TimeWindow
from chargeback_pipeline.sources.callers import CUT_CALLER_CHARACTERS, CallerIdentity
from chargeback_pipeline.storage.package_files import package_path

KQL_DIR = package_path("sources", "log_analytics")
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,254}")


def kql_datetime(instant: datetime) -> str:
    """A KQL datetime literal, formatted by us from a timezone-aware datetime (never from text)."""
    if instant.tzinfo is None:
        raise ValueError("query bounds must be timezone-aware")
    return f"datetime({instant.astimezone(UTC):%Y-%m-%dT%H:%M:%S.%fZ})"


def validated_table_name(name: str) -> str:
    if not _IDENTIFIER.fullmatch(name):
        raise ValueError(f"not a Log Analytics table name: {name!r}")
    return name


def kql_name_literal(name: str) -> str:
    """A KQL string literal of a name validated by CallerIdentity (no quote, no backslash in it)."""
    if not re.fullmatch(r"[^'\"\\\x00-\x1f]{1,64}", name):
        raise ValueError(f"not a name that can be written into a query: {name!r}")
    return f'"{name}"'


def caller_placeholders(callers: CallerIdentity) -> dict[str, str]:
    """The values of gateway_logs_callers.kql's caller placeholders: names written by us as literals."""
    header = (
        f"substring(tostring(RequestHeaders[{kql_name_literal(callers.header)}]), 0, {CUT_CALLER_CHARACTERS})"
        if callers.header
        else '""'
    )
    return {
        "caller_keys": ", ".join(kql_name_literal(key) for key in callers.trace_keys),
        "caller_header_value": header,
        "caller_cut": str(CUT_CALLER_CHARACTERS),
    }


@dataclass(frozen=True)
class TableQuery:
    """One KQL file bound to one table and the schema its projection lands in."""

    table: str
    schema: pa.Schema
    template: Template

    @classmethod
    def load(cls, path: Path, table: str, schema: pa.Schema, fixed: dict[str, str] | None = None) -> "TableQuery":
        """`fixed`: placeholders filled once here (e.g. caller_placeholders), the window's at each query."""
        lines = path.read_text(encoding="utf-8").splitlines()
        text = "\n".join(line for line in lines if not line.lstrip().startswith("//")).strip()
        if fixed:
            text = Template(text).safe_substitute(fixed)
        return cls(validated_table_name(table), schema, Template(text))

    def rows(self, window: TimeWindow) -> str:
        return self.template.substitute(
            table=self.table, start=kql_datetime(window.start), end=kql_datetime(window.end)
        )

    def count(self, window: TimeWindow) -> str:
        return f"{self.rows(window)}\n| count"
