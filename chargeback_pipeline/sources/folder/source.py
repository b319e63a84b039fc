"""Logs exported from Log Analytics into a folder, one JSON object a line.

Layout: `<root>/ApiManagementGatewayLogs/`, `<root>/ApiManagementGatewayLlmLog/` and `<root>/metrics/`,
every `*.json`, `*.jsonl` or `*.jsonl.gz` below them, recursively. Only the columns of the landed
schemas are read (extra columns, payloads included, are never loaded); key order is free.

A file that is empty, truncated or not JSON fails the whole fetch with its name. A row whose values
cannot be typed is rejected with a reason, placed at its own time when that parses, else at its file's
earliest valid time, so it is reported exactly once and never silently dropped.
"""

from dataclasses import dataclass
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from chargeback_pipeline.sources.base import Fetched, TimeWindow
from chargeback_pipeline.storage.schemas import (
    DEPLOYMENT_METRICS_SCHEMA,
    GATEWAY_LOG_SCHEMA,
    LLM_LOG_SCHEMA,
    SOURCE_REJECT_SCHEMA,
)

FILE_PATTERNS = ("*.json", "*.jsonl", "*.jsonl.gz")
INTEGER_PATTERN = r"^\s*-?[0-9]+\s*$"
BOOLEAN_VALUES = "('true', 'false', '1', '0')"


class SourceFileError(ValueError):
    """A source file is empty, truncated or not JSON lines."""


def _typed(column: str, arrow_type: pa.DataType) -> tuple[str, str]:
    """DuckDB expression converting the text of `column` to its type, and the check that it did."""
    quoted = f'"{column}"'
    if pa.types.is_timestamp(arrow_type):
        return f"try_cast({quoted} as timestamptz)", f"{quoted} is null or try_cast({quoted} as timestamptz) is null"
    if pa.types.is_integer(arrow_type):
        sql_type = "integer" if arrow_type.bit_width == 32 else "bigint"
        return (
            f"try_cast(trim({quoted}) as {sql_type})",
            f"{quoted} is not null and (not regexp_matches({quoted}, '{INTEGER_PATTERN}')"
            f" or try_cast(trim({quoted}) as {sql_type}) is null)",
        )
    if pa.types.is_boolean(arrow_type):
        return (
            f"lower(trim({quoted})) in ('true', '1')",
            f"{quoted} is not null and lower(trim({quoted})) not in {BOOLEAN_VALUES}",
        )
    return quoted, "false"


@dataclass
class _ParsedTable:
    rows: pa.Table
    rejected: pa.Table  # SOURCE_REJECT_SCHEMA


class FolderSource:
    name = "folder"

    def __init__(
        self,
        root: Path | str,
        gateway_table: str = "ApiManagementGatewayLogs",
        llm_table: str = "ApiManagementGatewayLlmLog",
        metrics_folder: str = "metrics",
    ):
        self.root = Path(root)
        if not self.root.is_dir():
            raise FileNotFoundError(f"source folder {self.root} does not exist")
        self._folders = {"gateway": gateway_table, "llm": llm_table, "metrics": metrics_folder}
        # Parsed files per folder, reused while no file changed: a ranged run asks for many hours.
        self._cache: dict[str, tuple[tuple, _ParsedTable]] = {}

    def gateway_logs(self, window: TimeWindow) -> Fetched:
        return self._fetch(self._folders["gateway"], GATEWAY_LOG_SCHEMA, "TimeGenerated", window)

    def llm_logs(self, window: TimeWindow) -> Fetched:
        return self._fetch(self._folders["llm"], LLM_LOG_SCHEMA, "TimeGenerated", window)

    def deployment_metrics(self, window: TimeWindow) -> Fetched:
        return self._fetch(self._folders["metrics"], DEPLOYMENT_METRICS_SCHEMA, "TimeStamp", window)

    def _files(self, folder: str) -> list[Path]:
        base = self.root / folder
        files = {p for pattern in FILE_PATTERNS for p in base.rglob(pattern) if p.is_file()}
        return sorted(files)

    def _fetch(self, folder: str, schema: pa.Schema, time_column: str, window: TimeWindow) -> Fetched:
        files = self._files(folder)
        signature = (folder, tuple((str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in files))
        cached = self._cache.get(folder)
        if cached is None or cached[0] != signature:
            cached = self._cache[folder] = (signature, self._parse(folder, files, schema, time_column))
        parsed = cached[1]
        in_window = pc.and_(
            pc.greater_equal(parsed.rows[time_column], pa.scalar(window.start, schema.field(time_column).type)),
            pc.less(parsed.rows[time_column], pa.scalar(window.end, schema.field(time_column).type)),
        )
        anchor = parsed.rejected["placed_at"]
        rejected_here = pc.and_(
            pc.greater_equal(anchor, pa.scalar(window.start, anchor.type)),
            pc.less(anchor, pa.scalar(window.end, anchor.type)),
        )
        return Fetched(
            rows=parsed.rows.filter(in_window),
            rejected=parsed.rejected.filter(rejected_here),
        )

    def _parse(self, folder: str, files: list[Path], schema: pa.Schema, time_column: str) -> _ParsedTable:
        if not files:
            return _ParsedTable(schema.empty_table(), SOURCE_REJECT_SCHEMA.empty_table())
        con = duckdb.connect()
        con.execute("SET TimeZone = 'UTC'")
        text_columns = {field.name: "VARCHAR" for field in schema}
        for path in files:
            if path.stat().st_size == 0:
                raise SourceFileError(f"source file {path} is empty")
            try:
                con.execute(
                    "CREATE OR REPLACE TEMP TABLE one_file AS SELECT * FROM read_json(?, format = 'auto', "
                    "columns = ?, filename = true, hive_partitioning = false, maximum_object_size = 16777216)",
                    [str(path), text_columns],
                )
            except duckdb.Error as error:
                raise SourceFileError(f"source file {path} is not valid JSON lines: {error}") from error
            con.execute(
                "CREATE TEMP TABLE IF NOT EXISTS text_rows AS SELECT * FROM one_file LIMIT 0;"
                "INSERT INTO text_rows SELECT * FROM one_file"
            )
        conversions = {field.name: _typed(field.name, field.type) for field in schema}
        reasons = ", ".join(
            f"case when {check} then '{name} is not a valid {schema.field(name).type}' end"
            for name, (_, check) in conversions.items()
        )
        con.execute(
            f"CREATE TEMP TABLE checked AS SELECT *, concat_ws('; ', {reasons}) AS reason, "
            f"{conversions[time_column][0]} AS parsed_time FROM text_rows"
        )
        typed = ", ".join(f'{expr} AS "{name}"' for name, (expr, _) in conversions.items())
        rows = con.sql(f"SELECT {typed} FROM checked WHERE reason = '' ORDER BY ALL").to_arrow_table()
        record = "to_json(struct_pack(" + ", ".join(f'"{n}" := "{n}"' for n in schema.names) + "))"
        rejected = con.sql(
            f"""
            WITH anchors AS (
                SELECT filename, min(parsed_time) AS anchor
                FROM checked GROUP BY filename
            )
            SELECT ? AS source_table, c.reason, c.filename AS origin, {record}::VARCHAR AS record,
                   coalesce(c.parsed_time, a.anchor) AS placed_at,
                   coalesce(c.parsed_time, a.anchor) IS NULL AS unplaceable
            FROM checked AS c JOIN anchors AS a USING (filename)
            WHERE c.reason <> '' ORDER BY origin, record
            """,
            params=[folder],
        ).to_arrow_table()
        unplaceable = rejected.filter(rejected["unplaceable"])
        if unplaceable.num_rows:
            raise SourceFileError(
                f"source file {unplaceable['origin'][0]} has no row with a valid {time_column}: "
                f"{unplaceable['reason'][0]}"
            )
        return _ParsedTable(rows.cast(schema), rejected.drop_columns(["unplaceable"]).cast(SOURCE_REJECT_SCHEMA))
