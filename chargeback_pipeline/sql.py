"""Runs the SQL models in `dbt_like_sql/` with DuckDB.

A model is one SELECT in one file, named by its path (`marts/fct_attributed_requests`). Models refer to
relations by name: Arrow tables the caller registers, or earlier models, which are built as temp
tables in the order given. Partition windows reach the SQL only as bound parameters ($window_start...).
"""

from datetime import UTC, datetime
from functools import cache
from pathlib import Path

import duckdb
import pyarrow as pa

SQL_DIR = Path(__file__).resolve().parent.parent / "dbt_like_sql"


@cache
def model_sql(model: str) -> str:
    path = SQL_DIR / f"{model}.sql"
    if not path.is_file():
        raise FileNotFoundError(f"SQL model {model!r} not found at {path}")
    return path.read_text(encoding="utf-8")


def model_name(model: str) -> str:
    return model.rsplit("/", 1)[-1]


def connect() -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    # Dates and hour truncation must be UTC whatever the machine's zone is.
    con.execute("SET TimeZone = 'UTC'")
    return con


def _bound(sql: str, params: dict) -> dict:
    # DuckDB refuses parameters a statement does not use; pass each model only its own.
    return {name: value for name, value in params.items() if f"${name}" in sql}


def _utc(params: dict | None) -> dict:
    return {k: (v.astimezone(UTC) if isinstance(v, datetime) else v) for k, v in (params or {}).items()}


def build_models(
    con: duckdb.DuckDBPyConnection, models: list[str], relations: dict[str, pa.Table], params: dict | None = None
) -> None:
    """Register `relations` and build `models`, in order, as temp tables other models can read."""
    params = _utc(params)
    for name, table in relations.items():
        con.register(name, table)
    for model in models:
        sql = model_sql(model)
        con.execute(f"CREATE OR REPLACE TEMP TABLE {model_name(model)} AS {sql}", _bound(sql, params))


def select_model(con: duckdb.DuckDBPyConnection, model: str, params: dict | None = None) -> pa.Table:
    """The rows of one model, over what the connection holds, as Arrow."""
    sql = model_sql(model)
    return con.sql(sql, params=_bound(sql, _utc(params))).to_arrow_table()


def run_models(
    con: duckdb.DuckDBPyConnection,
    models: list[str],
    relations: dict[str, pa.Table],
    params: dict | None = None,
) -> pa.Table:
    """Build all but the last of `models` over `relations`; return the last model's rows as Arrow."""
    *upstream, final = models
    build_models(con, upstream, relations, params)
    return select_model(con, final, params)
