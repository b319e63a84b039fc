"""Logs exported from Log Analytics into a folder, one JSON object a line.

Layout: `<root>/ApiManagementGatewayLogs/`, `<root>/ApiManagementGatewayLlmLog/` and `<root>/metrics/`,
every `*.json`, `*.jsonl`, `*.jsonl.gz` or `*.json.gz` below them, recursively. Only the columns of the
landed schemas are read (extra columns, payloads included, are never loaded); key order is free.

A file that is empty (also a gzip of nothing, or only blank lines), truncated or not JSON fails the whole
fetch with its name. A row whose values cannot be typed is rejected with a reason, placed at its own
time when that parses, else at its file's earliest valid time, so it is reported exactly once and never
silently dropped.

Proof of input. A fetch fails with `SourceInputError` (permanent: never retried) unless it saw the input
of its window:
- the root and the table's folder exist and can be read, and so can every folder and file below it;
- some file of the table covers the window. A file covers the time from its earliest to its latest row
  (TimeGenerated; metrics: TimeStamp). A window no file covers cannot be told from a missing export, so
  it fails, unless the user declared it empty with a marker file in the table's folder (anywhere below
  it): `_EMPTY_<YYYY-MM-DDTHH>` for an hour, `_EMPTY_<YYYY-MM-DD>` for a day (UTC), whose content is an
  optional reason. Markers are only read for windows no file covers, so a stale marker never hides rows.
  A declared window comes back as `Fetched.declared_empty` (who declared it and why) and is logged.
- The log windows' join margins belong to the neighbouring hours: only the window without them is judged.

Symlinks are followed, the table folder's own included: exports often live on a mounted share linked
into place, and a link is a deliberate act of whoever set the folder up. A broken link fails naming it
and its target; a folder or file reached twice (a link loop, two links to one place) is read once.
"""

import logging
import os
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from chargeback_pipeline.sources.base import Fetched, SourceInputError, TimeWindow
from chargeback_pipeline.sources.callers import CALLER_COLUMN, NO_CALLERS, CallerIdentity
from chargeback_pipeline.sources.folder.callers import caller_sql, source_columns, trace_keys_sql
from chargeback_pipeline.storage.schemas import (
    DEPLOYMENT_METRICS_SCHEMA,
    LLM_LOG_SCHEMA,
    SOURCE_REJECT_SCHEMA,
)

LOGGER = logging.getLogger(__name__)
FILE_SUFFIXES = (".json", ".jsonl", ".jsonl.gz", ".json.gz")
FILE_PATTERNS = tuple(f"*{suffix}" for suffix in FILE_SUFFIXES)
INTEGER_PATTERN = r"^\s*-?[0-9]+\s*$"
BOOLEAN_VALUES = "('true', 'false', '1', '0')"
MARKER_PREFIX = "_EMPTY_"
_MARKER_NAME = re.compile(r"_EMPTY_(?P<day>\d{4}-\d{2}-\d{2})(?:T(?P<hour>\d{2}))?")
MAX_REASON_CHARACTERS = 500  # of a marker's content, as logged and recorded
MAX_LISTED = 10  # names listed in an error message


class SourceFileError(SourceInputError, ValueError):
    """A source file cannot be read, or is empty, truncated or not JSON lines."""


@dataclass(frozen=True)
class EmptyMarker:
    """`_EMPTY_<period>`: the user declares the table had no rows in `window` (an hour or a day)."""

    path: Path
    window: TimeWindow

    def reason(self) -> str:
        """The marker's content, read only when the marker is used (an export may hold thousands)."""
        try:
            with self.path.open("rb") as file:
                text = file.read(4 * MAX_REASON_CHARACTERS).decode("utf-8", errors="replace")
        except OSError as error:
            raise SourceInputError(
                f"empty-window marker {self.path} cannot be read: {error.strerror or error}"
            ) from error
        return " ".join(text.split())[:MAX_REASON_CHARACTERS]

    def describe(self) -> str:
        reason = self.reason()
        return f"{self.path}" + (f" ({reason})" if reason else "")


@dataclass(frozen=True)
class _Listing:
    folder: Path
    data_files: list[Path]
    markers: list[EmptyMarker]
    ignored: list[Path]


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
    spans: list[tuple[datetime, datetime]]  # per file: its earliest and latest row time


def _marker(path: Path) -> EmptyMarker:
    match = _MARKER_NAME.fullmatch(path.name)
    try:
        if match is None:
            raise ValueError("bad name")
        start = datetime.fromisoformat(match["day"]).replace(tzinfo=UTC)
        if match["hour"] is not None:
            start = start.replace(hour=int(match["hour"]))
        length = timedelta(days=1) if match["hour"] is None else timedelta(hours=1)
    except ValueError:
        raise SourceInputError(
            f"{path} is not an empty-window marker: name it {MARKER_PREFIX}YYYY-MM-DD (a day) or "
            f"{MARKER_PREFIX}YYYY-MM-DDTHH (an hour, UTC), e.g. {MARKER_PREFIX}2026-03-10T07"
        ) from None
    return EmptyMarker(path, TimeWindow(start, start + length))


def _declaring(markers: list[EmptyMarker], window: TimeWindow) -> list[EmptyMarker]:
    """The markers that together cover the whole window, or [] when they leave any of it uncovered."""
    covered_until, used = window.start, []
    for marker in sorted(markers, key=lambda m: (m.window.start, m.window.end)):
        if marker.window.start <= covered_until < marker.window.end:
            covered_until = marker.window.end
            used.append(marker)
        if covered_until >= window.end:
            return used
    return []


def _listing_of(root: Path, name: str) -> _Listing:
    """Every data file, marker and ignored file below `root/name`, or SourceInputError naming the path."""
    if not root.is_dir():
        if root.is_symlink():
            raise SourceInputError(f"source folder {root} is a symlink to {os.readlink(root)}, which does not exist")
        what = "is not a folder" if root.exists() else "does not exist"
        raise SourceInputError(f"source folder {root} {what} (CHARGEBACK_SOURCE_FOLDER)")
    folder = root / name
    if not folder.is_dir():
        if folder.is_symlink():
            raise SourceInputError(f"table folder {folder} is a symlink to {os.readlink(folder)}, which does not exist")
        if folder.exists():
            raise SourceInputError(f"table folder {folder} is not a folder")
        try:
            present = sorted(entry.name for entry in root.iterdir())
        except OSError as error:
            raise SourceInputError(f"source folder {root} cannot be read: {error.strerror or error}") from error
        listed = ", ".join(present[:MAX_LISTED]) + (", ..." if len(present) > MAX_LISTED else "")
        raise SourceInputError(
            f"table folder {folder} does not exist (the source folder holds: {listed or 'nothing'}); "
            "check the table names (CHARGEBACK_GATEWAY_TABLE, CHARGEBACK_LLM_TABLE) and the export"
        )
    if folder.is_symlink():
        LOGGER.info("Table folder %s is a symlink to %s: following it", folder, folder.resolve())
    data_files: list[Path] = []
    markers: list[EmptyMarker] = []
    ignored: list[Path] = []
    seen: set[tuple[int, int]] = set()  # (device, inode) of every folder and file read: each once
    pending = [folder]
    while pending:  # bounded: each real folder is listed at most once
        directory = pending.pop()
        try:
            identity = directory.stat()
            if (identity.st_dev, identity.st_ino) in seen:
                continue
            seen.add((identity.st_dev, identity.st_ino))
            if not os.access(directory, os.R_OK | os.X_OK):
                raise PermissionError(13, "Permission denied")
            with os.scandir(directory) as scan:
                entries = sorted(scan, key=lambda entry: entry.name)
        except OSError as error:
            raise SourceInputError(f"folder {directory} cannot be read: {error.strerror or error}") from error
        for entry in entries:
            path = Path(entry.path)
            if entry.is_dir():  # follows symlinks
                pending.append(path)
                continue
            if not entry.is_file():
                if entry.is_symlink():
                    raise SourceInputError(f"{path} is a symlink to {os.readlink(path)}, which does not exist")
                ignored.append(path)  # a socket, a fifo: never data
                continue
            identity = entry.stat()
            if (identity.st_dev, identity.st_ino) in seen:
                continue
            seen.add((identity.st_dev, identity.st_ino))
            if entry.name.startswith(MARKER_PREFIX):
                markers.append(_marker(path))
            elif entry.name.endswith(FILE_SUFFIXES):
                data_files.append(path)
            elif not entry.name.startswith((".", "_")):  # hidden files and markers such as _SUCCESS
                ignored.append(path)
    return _Listing(folder, sorted(data_files), markers, sorted(ignored))


def _readable(path: Path) -> None:
    try:
        if not os.access(path, os.R_OK):
            raise PermissionError(13, "Permission denied")
        with path.open("rb") as file:
            file.read(1)
    except OSError as error:
        raise SourceFileError(f"source file {path} cannot be read: {error.strerror or error}") from error


class FolderSource:
    name = "folder"

    def __init__(
        self,
        root: Path | str,
        gateway_table: str = "ApiManagementGatewayLogs",
        llm_table: str = "ApiManagementGatewayLlmLog",
        metrics_folder: str = "metrics",
        callers: CallerIdentity = NO_CALLERS,
    ):
        # The root is checked at every fetch, not here: a share can be unmounted between two runs.
        self.root = Path(root)
        self._folders = {"gateway": gateway_table, "llm": llm_table, "metrics": metrics_folder}
        self._callers = callers  # configured: the gateway rows gain CallerId, read as folder/callers.py says
        # Parsed files per folder, reused while no file changed: a ranged run asks for many hours.
        self._cache: dict[str, tuple[tuple, _ParsedTable]] = {}

    def gateway_logs(self, window: TimeWindow) -> Fetched:
        schema = self._callers.gateway_schema()
        return self._fetch(self._folders["gateway"], schema, "TimeGenerated", window, self._core(window))

    def llm_logs(self, window: TimeWindow) -> Fetched:
        return self._fetch(self._folders["llm"], LLM_LOG_SCHEMA, "TimeGenerated", window, self._core(window))

    @staticmethod
    def _core(window: TimeWindow) -> TimeWindow:
        """The whole hours inside the window, without the join margins the logs are pulled with (those
        belong to the neighbouring hours): the part it must have input for."""
        start = window.start.replace(minute=0, second=0, microsecond=0)
        start = start if start == window.start else start + timedelta(hours=1)
        end = window.end.replace(minute=0, second=0, microsecond=0)
        return TimeWindow(start, end) if start < end else window

    def trace_record_keys(self, window: TimeWindow) -> dict[str, int]:
        """The metadata names in the exported gateway rows' trace records and how many records carry each
        (names only, for `chargeback discover`); the window is not cut: an export is read whole."""
        listing = _listing_of(self.root, self._folders["gateway"])
        if not listing.data_files:
            return {}
        files = "read_json(?, format = 'auto', columns = {'TraceRecords': 'JSON'}, maximum_object_size = 16777216)"
        with duckdb.connect() as con:
            rows = con.execute(trace_keys_sql(files), [[str(path) for path in listing.data_files]]).fetchall()
        return dict(rows)

    def deployment_metrics(self, window: TimeWindow) -> Fetched:
        return self._fetch(self._folders["metrics"], DEPLOYMENT_METRICS_SCHEMA, "TimeStamp", window, window)

    def _fetch(
        self, folder: str, schema: pa.Schema, time_column: str, window: TimeWindow, judged: TimeWindow
    ) -> Fetched:
        listing = _listing_of(self.root, folder)
        try:
            stats = [(p, p.stat()) for p in listing.data_files]
        except OSError as error:
            raise SourceFileError(f"source file {error.filename} cannot be read: {error.strerror}") from error
        signature = (folder, tuple((str(p), s.st_size, s.st_mtime_ns) for p, s in stats))
        cached = self._cache.get(folder)
        if cached is None or cached[0] != signature:
            if listing.ignored:
                names = ", ".join(str(p) for p in listing.ignored[:MAX_LISTED])
                LOGGER.warning(
                    "Ignored %d files in %s that are not JSON lines (%s): %s",
                    len(listing.ignored), listing.folder, ", ".join(FILE_PATTERNS), names,
                )  # fmt: skip
            cached = self._cache[folder] = (signature, self._parse(folder, listing.data_files, schema, time_column))
        parsed = cached[1]
        declared = self._judge(listing, parsed, judged)
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
            declared_empty=declared,
        )

    @staticmethod
    def _judge(listing: _Listing, parsed: _ParsedTable, judged: TimeWindow) -> str | None:
        """None when a file covers the window; the declaration when markers declare it empty; else raises."""
        if any(first < judged.end and last >= judged.start for first, last in parsed.spans):
            return None
        declaring = _declaring(listing.markers, judged)
        if declaring:
            declaration = f"{judged} declared empty by " + "; ".join(m.describe() for m in declaring)
            LOGGER.warning("No input in %s for %s: %s", listing.folder, judged, declaration)
            return declaration
        hour, day = f"{MARKER_PREFIX}{judged.start:%Y-%m-%dT%H}", f"{MARKER_PREFIX}{judged.start:%Y-%m-%d}"
        if parsed.spans:
            earliest = min(first for first, _ in parsed.spans)
            latest = max(last for _, last in parsed.spans)
            seen = f"its {len(parsed.spans)} files hold rows from {earliest.isoformat()} to {latest.isoformat()}"
        else:
            seen = f"it holds no data file ({', '.join(FILE_PATTERNS)})"
        raise SourceInputError(
            f"no file in {listing.folder} covers {judged} ({seen}): a missing export cannot be told from a "
            f"quiet window. Export the missing rows, or, if the table had no rows then, declare it: create "
            f"{listing.folder / hour} (one per hour, or {day} for the day), with the reason as its content"
        )

    def _parse(self, folder: str, files: list[Path], schema: pa.Schema, time_column: str) -> _ParsedTable:
        if not files:
            return _ParsedTable(schema.empty_table(), SOURCE_REJECT_SCHEMA.empty_table(), [])
        con = duckdb.connect()
        try:
            return self._parse_with(con, folder, files, schema, time_column)
        finally:
            con.close()

    def _parse_with(
        self, con: duckdb.DuckDBPyConnection, folder: str, files: list[Path], schema: pa.Schema, time_column: str
    ) -> _ParsedTable:
        con.execute("SET TimeZone = 'UTC'")
        text_columns = {field.name: "VARCHAR" for field in schema}
        derived = ""  # CallerId is derived from the named values of two export columns, never copied
        if CALLER_COLUMN in text_columns:
            callers = self._callers
            del text_columns[CALLER_COLUMN]
            read = source_columns(callers)
            text_columns |= read
            derived = f', {caller_sql(callers)} AS "{CALLER_COLUMN}"'
            derived_exclude = "EXCLUDE (" + ", ".join(f'"{name}"' for name in read) + ")"
        for path in files:
            _readable(path)
            if path.stat().st_size == 0:
                raise SourceFileError(f"source file {path} is empty")
            try:
                selected = f"* {derived_exclude}{derived}" if derived else "*"
                con.execute(
                    f"CREATE OR REPLACE TEMP TABLE one_file AS SELECT {selected} FROM read_json(?, format = 'auto', "
                    "columns = ?, filename = true, hive_partitioning = false, maximum_object_size = 16777216)",
                    [str(path), text_columns],
                )
            except duckdb.Error as error:
                raise SourceFileError(f"source file {path} is not valid JSON lines: {error}") from error
            if con.execute("SELECT count(*) FROM one_file").fetchone()[0] == 0:
                raise SourceFileError(f"source file {path} is empty (it holds no JSON line)")
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
        spans = con.sql(
            "SELECT min(parsed_time) AS first, max(parsed_time) AS last FROM checked "
            "WHERE parsed_time IS NOT NULL GROUP BY filename ORDER BY ALL"
        ).to_arrow_table()
        return _ParsedTable(
            rows.cast(schema),
            rejected.drop_columns(["unplaceable"]).cast(SOURCE_REJECT_SCHEMA),
            list(zip(spans["first"].to_pylist(), spans["last"].to_pylist(), strict=True)),
        )
