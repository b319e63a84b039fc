"""Serialising published reports: Parquet and RFC 4180 CSV, byte-identical for identical input."""

import csv
import io
from datetime import date, datetime

import pyarrow as pa

from chargeback_pipeline.storage.lake import parquet_bytes


def _csv_value(value) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        # ISO 8601 in UTC with a Z, microseconds always present so every row has the same width.
        return value.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def csv_bytes(table: pa.Table) -> bytes:
    """RFC 4180: header row, CRLF line ends, fields quoted when they hold a comma, quote or line break."""
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, lineterminator="\r\n", quoting=csv.QUOTE_MINIMAL)
    writer.writerow(table.column_names)
    for batch in table.to_batches():
        columns = [column.to_pylist() for column in batch.columns]
        writer.writerows([_csv_value(v) for v in row] for row in zip(*columns, strict=True))
    return buffer.getvalue().encode("utf-8")


def report_files(table: pa.Table) -> dict[str, bytes]:
    return {"parquet": parquet_bytes(table), "csv": csv_bytes(table)}
