"""The caller dimension in attribution: every landed gateway hour read with a CallerId column.

Hours landed without caller keys (sources/callers.py) have no CallerId; they are read with it null, so
the staging models are one text whatever was configured when each hour was landed. The caller reaches
what attribution writes only for hours landed with it: without keys, the attributed requests and every
report are exactly what they were before the feature.
"""

import pyarrow as pa
import pyarrow.parquet as pq

from chargeback_pipeline.storage import sql
from chargeback_pipeline.storage.schemas import CALLER_COLUMN

# The attributed-requests column that carries the caller (fct_attributed_requests).
CALLER_ID = "caller_id"
UNKNOWN_CALLER = "unknown"  # a request whose caller no configured key or header named


def with_caller_column(relation: sql.Relation) -> tuple[sql.Relation, bool]:
    """The landed gateway rows with CallerId (null where the hour was landed without it), and whether
    the hour was landed with it: only then does the caller reach what attribution writes."""
    if isinstance(relation, pa.Table):
        if CALLER_COLUMN in relation.column_names:
            return relation, True
        return relation.append_column(CALLER_COLUMN, pa.nulls(relation.num_rows, pa.string())), False
    lacking = [path for path in relation.paths if CALLER_COLUMN not in pq.read_schema(path).names]
    if not lacking:
        return relation, True
    if len(lacking) != len(relation.paths):
        raise ValueError(f"landed gateway hours disagree on {CALLER_COLUMN}: {', '.join(lacking)} lack it")
    return sql.ParquetFiles(relation.paths, null_columns=(CALLER_COLUMN,)), False


def excluded_columns(with_callers: bool) -> tuple[str, ...]:
    """Columns of the attributed requests left out of what is written: the caller, unless landed."""
    return () if with_callers else (CALLER_ID,)
