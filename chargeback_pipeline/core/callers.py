"""The caller dimension in attribution and the rollups: the caller column read everywhere, written only
where the logs carried callers.

Hours landed without caller keys (sources/callers.py) have no CallerId, and their attributed requests no
caller_id; they are read with the column null, so every SQL model is one text whatever was configured.
The rollups then run their caller models (fct_daily_caller_usage, fct_hourly_billable_caller_usage) only
for days attributed with callers, else the models they always ran: without keys, the attributed requests
and every report are exactly what they were before the feature.
"""

from dataclasses import replace

import pyarrow as pa
import pyarrow.parquet as pq

from chargeback_pipeline.storage import sql
from chargeback_pipeline.storage.schemas import CALLER_COLUMN, CALLER_ID, UNASSIGNED_PRODUCT, UNKNOWN_CALLER

__all__ = [
    "CALLER_ID",
    "UNASSIGNED_PRODUCT",
    "UNKNOWN_CALLER",
    "excluded_columns",
    "with_caller_column",
    "with_caller_id",
]


def with_column(relation: sql.Relation, column: str) -> tuple[sql.Relation, bool]:
    """`relation` with the text column `column` (null where its rows lack it), and whether they had it.
    All files of a relation must agree: a day landed partly with and partly without callers is refused."""
    if isinstance(relation, pa.Table):
        if column in relation.column_names:
            return relation, True
        return relation.append_column(column, pa.nulls(relation.num_rows, pa.string())), False
    lacking = [path for path in relation.paths if column not in pq.read_schema(path).names]
    if not lacking:
        return relation, True
    if len(lacking) != len(relation.paths):
        raise ValueError(
            f"{len(lacking)} of {len(relation.paths)} partitions lack {column} (e.g. {lacking[0]}): caller keys were "
            "changed inside the period; re-run its hours from the raw logs (`chargeback backfill`) with one setting"
        )
    return replace(relation, null_columns=(*relation.null_columns, column)), False


def with_caller_column(relation: sql.Relation) -> tuple[sql.Relation, bool]:
    """The landed gateway rows with CallerId, and whether the hour was landed with it."""
    return with_column(relation, CALLER_COLUMN)


def with_caller_id(relation: sql.Relation) -> tuple[sql.Relation, bool]:
    """Attributed requests with caller_id, and whether they were attributed with callers."""
    return with_column(relation, CALLER_ID)


def excluded_columns(with_callers: bool) -> tuple[str, ...]:
    """Columns of a model left out of what is written: the caller, unless the input carried callers."""
    return () if with_callers else (CALLER_ID,)
