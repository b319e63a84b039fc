"""Runs the SQL models in `dbt_like_sql/` with DuckDB.

A model is one SELECT in one file, named by its path (`marts/fct_attributed_requests`). Models refer to
relations by name: tables the caller registers, or other models. Partition windows reach the SQL only as
bound parameters ($window_start...).

How a model is built is its own choice, as in dbt, declared in its file by the comment line
`-- materialized: ephemeral`: such a model is never built; it is inlined as a CTE into every model that
reads it, so DuckDB plans the whole chain as one query, reading only the columns and rows it needs and
keeping no intermediate copy. For models read once. Any other model given to `build_models` is built
as a temp table, in the order given, once: for models read more than once.

Relations are Arrow tables, or `ParquetFiles` (the lake's local Parquet objects), which DuckDB reads
itself: in parallel, and only the columns the query needs.
"""

import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from pathlib import Path

import duckdb
import pyarrow as pa

from chargeback_pipeline.storage.package_files import package_path

# The repository's dbt_like_sql/, shipped in the wheel as package data (chargeback_pipeline.storage.package_files).
SQL_DIR = package_path("dbt_like_sql")
_EPHEMERAL = re.compile(r"^\s*--\s*materialized:\s*ephemeral\s*$", re.MULTILINE)
_LEADING_COMMENTS = re.compile(r"\A(?:\s*--[^\n]*\n)*\s*")
_WITH = re.compile(r"with\s", re.IGNORECASE)
_COMMENT = re.compile(r"--[^\n]*")
# Memory a shared database's block allocator keeps for reuse: enough for the largest hour of a 10M
# requests/day tenant without handing pages back to the OS between hours.
SHARED_BLOCK_MEMORY = "512MB"
# What a shared database may hold before it spills to disk (CHARGEBACK_DUCKDB_MEMORY_LIMIT): a run's
# memory stays near this plus the interpreter as the tenant grows. At 10M requests a day the spilling
# costs 14 % more time than no limit (BENCHMARKS.md "Memory under a limit").
DEFAULT_MEMORY_LIMIT = "600MB"
_MEMORY_SIZE = re.compile(r"^[1-9][0-9]{0,6}(\.[0-9]+)?\s?(MB|GB|MiB|GiB)$")


def memory_limit_checked(value: str) -> str:
    """`value` if it is a size DuckDB takes as a memory limit (600MB, 2GiB), else a ValueError saying so."""
    if not _MEMORY_SIZE.match(value):
        raise ValueError(f"a DuckDB memory limit is a size like 600MB or 2GiB, got {value!r}")
    return value


# The hourly partition a row was read for, on relations that hold several hours' objects at once (a ranged
# run's): the hourly models group, join and filter by it, so many hours are computed in one statement.
PARTITION_HOUR = "partition_hour"


def _quoted(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


@dataclass(frozen=True)
class ParquetFiles:
    """Local Parquet files read as one relation (all of one schema)."""

    paths: tuple[str, ...]
    # Text columns the files lack, read as null (e.g. CallerId of hours landed without caller keys).
    null_columns: tuple[str, ...] = ()
    # The hour each file is the partition of (PARTITION_HOUR), when given: one per path.
    partition_hours: tuple[datetime, ...] = ()

    def sql(self) -> str:
        files = ", ".join(_quoted(path) for path in self.paths)
        extra = [f'NULL::VARCHAR AS "{name}"' for name in self.null_columns]
        if not self.partition_hours:
            return (
                f"(SELECT *, {', '.join(extra)} FROM read_parquet([{files}]))" if extra else f"read_parquet([{files}])"
            )
        # Each file's rows with its hour as a constant: the optimizer folds a model's window filter on the
        # hour into a filter on the file's own scan (row groups outside it are skipped), and DuckDB reads
        # the files of the union side by side.
        scans = []
        for path, hour in zip(self.paths, self.partition_hours, strict=True):
            tagged = [*extra, f"TIMESTAMPTZ {_quoted(hour.astimezone(UTC).isoformat())} AS {PARTITION_HOUR}"]
            scans.append(f"SELECT *, {', '.join(tagged)} FROM read_parquet({_quoted(path)})")
        return "(" + " UNION ALL ".join(scans) + ")"


Relation = pa.Table | ParquetFiles


def by_partition_hour(relations: dict[datetime, Relation]) -> Relation:
    """One relation of several hours' relations (one per hour, all of one schema), each row with its hour
    (PARTITION_HOUR). Local files stay files DuckDB reads itself; Arrow tables are tagged and concatenated."""
    if relations and all(isinstance(r, ParquetFiles) and len(r.paths) == 1 for r in relations.values()):
        (null_columns,) = {r.null_columns for r in relations.values()}
        return ParquetFiles(
            tuple(r.paths[0] for r in relations.values()), null_columns, partition_hours=tuple(relations)
        )
    if not all(isinstance(r, pa.Table) for r in relations.values()):
        raise ValueError("hours read together are all one local file each, or all Arrow tables")
    # The hour repeated by Arrow itself: a Python list of it cost about a second per busy hour of a 10M tenant.
    hour_type = pa.timestamp("us", tz="UTC")
    return pa.concat_tables(
        table.append_column(PARTITION_HOUR, pa.repeat(pa.scalar(hour, hour_type), table.num_rows))
        for hour, table in relations.items()
    )


@cache
def model_sql(model: str) -> str:
    path = SQL_DIR / f"{model}.sql"
    if not path.is_file():
        raise FileNotFoundError(f"SQL model {model!r} not found at {path}")
    return path.read_text(encoding="utf-8")


def model_name(model: str) -> str:
    return model.rsplit("/", 1)[-1]


@cache
def ephemeral_models() -> dict[str, str]:
    """Every ephemeral model's SQL by model name, dependencies before the models that read them."""
    found = {}
    for path in sorted(SQL_DIR.rglob("*.sql")):
        model = path.relative_to(SQL_DIR).with_suffix("").as_posix()
        if _EPHEMERAL.search(model_sql(model)):
            found[model_name(model)] = model_sql(model)
    ordered: dict[str, str] = {}

    def visit(name: str, seen: tuple[str, ...]) -> None:
        if name in ordered:
            return
        if name in seen:
            raise ValueError(f"ephemeral models read one another in a cycle: {' -> '.join((*seen, name))}")
        for other in found:
            if other != name and _reads(found[name], other):
                visit(other, (*seen, name))
        ordered[name] = found[name]

    for name in found:
        visit(name, ())
    return ordered


def _reads(sql: str, name: str) -> bool:
    """Whether `sql` names relation `name` outside its comments."""
    return re.search(rf"\b{re.escape(name)}\b", _COMMENT.sub("", sql)) is not None


def compiled_sql(model: str) -> str:
    """The model's SQL with the ephemeral models it reads (directly or through each other) as CTEs."""
    sql = model_sql(model)
    ephemerals = ephemeral_models()
    needed: set[str] = set()
    pending = [sql]
    while pending:
        text = pending.pop()
        for name, body in ephemerals.items():
            if name not in needed and name != model_name(model) and _reads(text, name):
                needed.add(name)
                pending.append(body)
    if not needed:
        return sql
    ctes = ",\n".join(f"{name} AS (\n{body}\n)" for name, body in ephemerals.items() if name in needed)
    body = sql[_LEADING_COMMENTS.match(sql).end() :]
    if _WITH.match(body):  # the model has CTEs of its own: one WITH clause for all
        return f"WITH {ctes},\n{body[4:]}"
    return f"WITH {ctes}\n{body}"


def connect(database: duckdb.DuckDBPyConnection | None = None) -> duckdb.DuckDBPyConnection:
    """A connection to a fresh in-memory database, or a new connection to `database` (`shared_database`)."""
    con = database.cursor() if database is not None else duckdb.connect()
    # Dates and hour truncation must be UTC whatever the machine's zone is.
    con.execute("SET TimeZone = 'UTC'")
    return con


@contextmanager
def shared_database(memory_limit: str | None = DEFAULT_MEMORY_LIMIT) -> Iterator[duckdb.DuckDBPyConnection]:
    """One in-memory database for many connections (`connect(database)`), e.g. the hours of a ranged run.

    Each connection keeps its own temp tables and registered relations. The database's block memory is
    allocated once and reused from hour to hour, instead of being handed back to the operating system
    and faulted in again for every hour (which cost a large tenant's day seconds of system time).
    Above `memory_limit` (None: DuckDB's default, 80 % of the machine) it spills to a private temporary
    folder, removed with the database (DuckDB's default, `.tmp` in the working directory, may be read-only
    in a container).
    """
    if memory_limit is not None:
        memory_limit_checked(memory_limit)
    with tempfile.TemporaryDirectory(prefix="chargeback-duckdb-") as spill:
        database = duckdb.connect()
        try:
            database.execute(f"SET block_allocator_memory = '{SHARED_BLOCK_MEMORY}'")
            database.execute("SET temp_directory = ?", [spill])
            if memory_limit is not None:
                database.execute(f"SET memory_limit = '{memory_limit}'")
            yield database
        finally:
            database.close()


def _bound(sql: str, params: dict) -> dict:
    # DuckDB refuses parameters a statement does not use; pass each model only its own.
    return {name: value for name, value in params.items() if re.search(rf"\${name}\b", sql)}


def _utc(params: dict | None) -> dict:
    return {k: (v.astimezone(UTC) if isinstance(v, datetime) else v) for k, v in (params or {}).items()}


def register(con: duckdb.DuckDBPyConnection, name: str, relation: Relation) -> None:
    if isinstance(relation, ParquetFiles):
        con.execute(f"CREATE OR REPLACE TEMP VIEW {name} AS SELECT * FROM {relation.sql()}")
    else:
        con.register(name, relation)


def build_models(
    con: duckdb.DuckDBPyConnection, models: list[str], relations: dict[str, Relation], params: dict | None = None
) -> None:
    """Register `relations` and build `models`, in order, as temp tables other models can read
    (ephemeral models are not built: the models that read them inline them)."""
    params = _utc(params)
    for name, relation in relations.items():
        register(con, name, relation)
    for model in models:
        if model_name(model) in ephemeral_models():
            continue
        sql = compiled_sql(model)
        con.execute(f"CREATE OR REPLACE TEMP TABLE {model_name(model)} AS {sql}", _bound(sql, params))


def select_model(con: duckdb.DuckDBPyConnection, model: str, params: dict | None = None) -> pa.Table:
    """The rows of one model, over what the connection holds, as Arrow."""
    sql = compiled_sql(model)
    return con.sql(sql, params=_bound(sql, _utc(params))).to_arrow_table()


# The lake's Parquet as DuckDB writes it: same rows in the same order give the same bytes (the ORDER BY
# of the model fixes the order; row groups are cut at fixed sizes).
_COPY_OPTIONS = "FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE 256000"


def copy_model(
    con: duckdb.DuckDBPyConnection, model: str, params: dict | None, path: Path | str, exclude: tuple[str, ...] = ()
) -> None:
    """Write the rows of one model to a local Parquet file with DuckDB's own writer: in parallel, and
    without the rows ever passing through Python (a large tenant's hour is hundreds of MB as Arrow).
    `exclude`: columns of the model left out of the file."""
    copy_query(con, compiled_sql(model), params, path, exclude)


def copy_query(
    con: duckdb.DuckDBPyConnection, sql: str, params: dict | None, path: Path | str, exclude: tuple[str, ...] = ()
) -> None:
    """`copy_model` for a query: e.g. one partition's rows of a table built for many."""
    target = str(path).replace("'", "''")
    # DuckDB's writer marks a column REQUIRED when its statistics say it holds no null, so a partition's
    # schema would depend on its rows. A CASE the optimizer cannot fold (random() is volatile, and always
    # >= 0) keeps every column nullable, as Arrow writes them: one schema for every partition.
    columns = "*" if not exclude else "* EXCLUDE (" + ", ".join(f'"{name}"' for name in exclude) + ")"
    nullable = f"SELECT CASE WHEN random() >= 0 THEN COLUMNS({columns}) END FROM ({sql})"
    con.execute(f"COPY ({nullable}) TO '{target}' ({_COPY_OPTIONS})", _bound(sql, _utc(params)))


def run_models(
    con: duckdb.DuckDBPyConnection,
    models: list[str],
    relations: dict[str, Relation],
    params: dict | None = None,
) -> pa.Table:
    """Build all but the last of `models` over `relations`; return the last model's rows as Arrow."""
    *upstream, final = models
    build_models(con, upstream, relations, params)
    return select_model(con, final, params)
