"""The streamed query response -> Arrow: typed columns read by DuckDB, plus the rows that fail typing.

The SDK's own response handling builds a Python object per cell and parses every datetime cell (about
19,000 rows/s on 2 cores, BENCHMARKS.md "Ingest"). Instead the response is streamed (`stream=True`) to a
`cls` hook that reads the JSON with DuckDB straight into typed Arrow columns (the hour lands, Parquet
written, at about 490,000 rows/s: BENCHMARKS.md "Latest run"); the SDK is handed only the `error` object,
so it still tells a complete answer from a partial one.
"""

import io
import json
from collections.abc import Sequence
from threading import Lock
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from chargeback_pipeline.sources.base import Fetched, TimeWindow
from chargeback_pipeline.sources.log_analytics.errors import UnexpectedAnswerError
from chargeback_pipeline.storage.schemas import SOURCE_REJECT_SCHEMA, UTC_TIMESTAMP

TIME_COLUMN = "TimeGenerated"  # where a rejected row is placed, when its time can be read
# The answer is read with every cell as text: typing happens per cell afterwards, so one bad cell
# rejects its row instead of failing the whole read.
_ANSWER_COLUMNS = {
    "tables": 'STRUCT(name VARCHAR, columns STRUCT(name VARCHAR, "type" VARCHAR)[], "rows" VARCHAR[][])[]',
    "error": "JSON",
}
_DUCKDB_TYPES = {pa.int32(): "INTEGER", pa.int64(): "BIGINT", pa.bool_(): "BOOLEAN", pa.string(): "VARCHAR"}


def _typed_cell(cell: str, arrow_type: pa.DataType) -> tuple[str, str]:
    """DuckDB expression typing one cell (sent as text), and the condition that it could not be typed."""
    if pa.types.is_timestamp(arrow_type):
        typed = f"TRY_CAST({cell} AS TIMESTAMPTZ)"
        return typed, f"{typed} IS NULL"  # a row without its time cannot be placed in any window
    sql_type = _DUCKDB_TYPES[arrow_type]
    typed = f"TRY_CAST({cell} AS {sql_type})"
    if pa.types.is_integer(arrow_type):  # TRY_CAST alone would round '1.5' to 2
        return typed, f"{cell} IS NOT NULL AND (NOT regexp_full_match({cell}, '-?[0-9]+') OR {typed} IS NULL)"
    return typed, f"{cell} IS NOT NULL AND {typed} IS NULL"


def _checked_rows_sql(schema: pa.Schema, positions: dict[str, int]) -> str:
    """Typed columns of every row, plus `reason` ('' when the row typed cleanly) and its JSON `record`."""
    typed, reasons, record = [], [], []
    for field in schema:
        cell = f"r[{positions[field.name]}]"
        value, failed = _typed_cell(cell, field.type)
        typed.append(f'{value} AS "{field.name}"')
        reasons.append(f"CASE WHEN {failed} THEN '{field.name} is not a valid {field.type}' END")
        record.append(f'"{field.name}" := {cell}')
    return (
        f"SELECT {', '.join(typed)}, concat_ws('; ', {', '.join(reasons)}) AS reason, "
        f"CASE WHEN reason <> '' THEN to_json(struct_pack({', '.join(record)}))::VARCHAR END AS record "
        "FROM (SELECT unnest(tables[1].rows) AS r FROM answer)"
    )


def read_answer(con: duckdb.DuckDBPyConnection, body: bytes) -> tuple[list | None, str | None]:
    """Parse an answer into the cursor's temp table `answer` (rows as text); its columns and error."""
    # The whole answer is one JSON object; DuckDB reserves maximum_object_size bytes, so ask exactly.
    answer = con.read_json(io.BytesIO(body), columns=_ANSWER_COLUMNS, maximum_object_size=len(body) + 1)
    con.register("body", answer)
    con.execute("CREATE TEMP TABLE answer AS SELECT * FROM body")  # parse once, read twice
    return con.sql("SELECT tables[1].columns, error FROM answer").fetchall()[0]


class ArrowAnswer:
    """`cls` hook of `query_workspace(stream=True)`: reads the streamed body with DuckDB into typed
    Arrow columns, and returns only the `error` object for the SDK to classify the answer."""

    def __init__(self, schema: pa.Schema) -> None:
        self.schema = schema
        self.checked: pa.Table | None = None  # schema columns + reason + record

    def __call__(self, pipeline_response: Any, body_chunks: Any, _headers: Any) -> dict:
        con = _duckdb_cursor()
        try:
            columns, error = read_answer(con, b"".join(body_chunks))
            positions = {column["name"]: index for index, column in enumerate(columns or [], start=1)}
            missing = [name for name in self.schema.names if name not in positions]
            if missing:
                raise UnexpectedAnswerError(f"the answer lacks the columns {missing} (got {list(positions)})")
            self.checked = con.sql(_checked_rows_sql(self.schema, positions)).to_arrow_table()
        finally:
            con.close()
        return {"error": json.loads(error) if error else None}


_DUCKDB: duckdb.DuckDBPyConnection | None = None
_DUCKDB_LOCK = Lock()


def _duckdb_cursor() -> duckdb.DuckDBPyConnection:
    """A fresh connection (cursor) to one in-memory database shared by the process: opening a database
    costs ~15 ms, a cursor nothing. Temp tables are private to each cursor, so threads do not meet."""
    global _DUCKDB
    with _DUCKDB_LOCK:
        if _DUCKDB is None:
            _DUCKDB = duckdb.connect()
        cursor = _DUCKDB.cursor()
    cursor.execute("SET TimeZone = 'UTC'")
    return cursor


def split_checked(checked: pa.Table, schema: pa.Schema, source_table: str, window: TimeWindow, origin: str) -> Fetched:
    """Clean rows in `schema`, and the others as rejects placed at their own time (the window's start
    when their time itself could not be read)."""
    clean = pc.equal(checked["reason"], "")
    if pc.all(clean).as_py():
        # The usual answer: nothing to set apart, so the rows are not copied (filtering a clean 20 MB
        # answer copied it: most of the split's cost, in bench ingest's per-part profile).
        kept, rejected = checked, checked.slice(0, 0)
    else:
        kept, rejected = checked.filter(clean), checked.filter(pc.invert(clean))
    own_time = rejected[TIME_COLUMN].cast(UTC_TIMESTAMP)
    return Fetched(
        rows=kept.select(schema.names).cast(schema),
        rejected=pa.table(
            {
                "source_table": pa.array([source_table] * rejected.num_rows, pa.string()),
                "reason": rejected["reason"],
                "origin": pa.array([origin] * rejected.num_rows, pa.string()),
                "record": rejected["record"],
                "placed_at": pc.coalesce(own_time, pa.scalar(window.start, UTC_TIMESTAMP)),
            },
            schema=SOURCE_REJECT_SCHEMA,
        ),
    )


def concat_fetched(parts: Sequence[Fetched], schema: pa.Schema) -> Fetched:
    return Fetched(
        rows=pa.concat_tables([schema.empty_table(), *(part.rows for part in parts)]),
        rejected=pa.concat_tables([SOURCE_REJECT_SCHEMA.empty_table(), *(part.rejected for part in parts)]),
    )
