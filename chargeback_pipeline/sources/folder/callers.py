"""The caller's identity in a folder export: the named values of TraceRecords and RequestHeaders only.

Log Analytics exports a dynamic column as JSON, or as a JSON document in a string (both are read). The
two columns are read by DuckDB only to evaluate `caller_sql` while the file is parsed: the result keeps
CallerId and neither column, so nothing else of them is ever landed (sources/callers.py).
"""

from chargeback_pipeline.sources.callers import CUT_CALLER_CHARACTERS, CallerIdentity

TRACE_COLUMN = "TraceRecords"
HEADERS_COLUMN = "RequestHeaders"


def _json(column: str) -> str:
    """The column as JSON, whether exported as JSON or as a JSON document in a string."""
    quoted = f'"{column}"'
    return f"(CASE WHEN json_type({quoted}) = 'VARCHAR' THEN try_cast({quoted} ->> '$' AS JSON) ELSE {quoted} END)"


def source_columns(callers: CallerIdentity) -> dict[str, str]:
    """The export columns read for the caller (as read_json column types)."""
    columns = {TRACE_COLUMN: "JSON"} if callers.trace_keys else {}
    return columns | ({HEADERS_COLUMN: "JSON"} if callers.header else {})


def caller_sql(callers: CallerIdentity) -> str:
    """DuckDB expression of CallerId: the first named trace key present (in the order configured; within
    a key, the first record that has it), else the named header; cut like the Log Analytics query. Key
    and header names are validated (letters, digits, _ . : -), so they are safe as literals here."""
    metadata = f"json_extract({_json(TRACE_COLUMN)}, '$[*].metadata[*]')"
    candidates = [
        f"nullif(list_filter({metadata}, lambda entry: entry ->> 'name' = '{key}')[1] ->> 'value', '')"
        for key in callers.trace_keys
    ]
    if callers.header:
        candidates.append(f"nullif({_json(HEADERS_COLUMN)} ->> '{callers.header}', '')")
    return f"left(coalesce({', '.join(candidates)}), {CUT_CALLER_CHARACTERS})"


def trace_keys_sql(files_sql: str) -> str:
    """DuckDB query of the metadata names in the trace records of `files_sql` (a read_json over the
    table's files, TraceRecords as JSON) and how many records carry each: names only, at most 100."""
    names = f"unnest(json_extract_string({_json(TRACE_COLUMN)}, '$[*].metadata[*].name'))"
    return (
        f"SELECT left(key, 64) AS key, count(*) AS records FROM (SELECT {names} AS key FROM {files_sql}) "
        "WHERE key <> '' GROUP BY ALL ORDER BY records DESC, key LIMIT 100"
    )
