"""Serialising published reports: Parquet and RFC 4180 CSV, byte-identical for identical input.

The CSVs are opened by finance in spreadsheets, so a text cell that a spreadsheet would read as a formula
(`=HYPERLINK(...)`, `+1`, `-1`, `@SUM(A1:A2)`, or one starting with a tab or carriage return) is written
with a leading single quote, as OWASP recommends against CSV injection. Only text columns are escaped:
numbers (negative money included), dates and timestamps are written as they are. A text cell that
already starts with a quote gets one more, so the rule is reversible: the exact value is the cell with
one leading `'` removed when it starts with one. The Parquet file always holds the exact values.
"""

import csv
import io
from datetime import date, datetime
from decimal import Decimal

import pyarrow as pa

from chargeback_pipeline.storage.lake import parquet_bytes
from chargeback_pipeline.storage.schemas import MONEY

# A text cell starting with one of these is prefixed with FORMULA_ESCAPE. OWASP's list (= + - @ tab CR),
# plus the escape itself, so that escaped and literal values can never be confused.
FORMULA_ESCAPE = "'"
FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r", FORMULA_ESCAPE)


def escape_formula(text: str) -> str:
    """The CSV cell of a text value: prefixed with a single quote when it would start a formula."""
    return FORMULA_ESCAPE + text if text.startswith(FORMULA_TRIGGERS) else text


def unescape_formula(cell: str) -> str:
    """The exact text value of a CSV text cell written by `csv_bytes` (for readers of the CSV)."""
    return cell[1:] if cell.startswith(FORMULA_ESCAPE) else cell


def _is_text(arrow_type: pa.DataType) -> bool:
    if pa.types.is_dictionary(arrow_type):
        arrow_type = arrow_type.value_type
    return pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type)


def _csv_value(value) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):  # one spelling in every file, as JSON and the UI write them
        return "true" if value else "false"
    if isinstance(value, datetime):
        # ISO 8601 in UTC with a Z, microseconds always present so every row has the same width.
        return value.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def _text_value(value: str | None) -> str:
    return "" if value is None else escape_formula(value)


def money_value(minor_unit: int):
    """A formatter of money cells at `minor_unit` decimals (866.67, not 866.670000). Money is computed at
    the minor unit, so this drops only zeros; a value with more digits keeps them all (never rounded)."""
    quantum = Decimal(1).scaleb(-minor_unit)

    def formatted(value: Decimal | None) -> str:
        if value is None:
            return ""
        at_minor_unit = value.quantize(quantum)
        return str(at_minor_unit if at_minor_unit == value else value)

    return formatted


def csv_bytes(table: pa.Table, minor_unit: int | None = None) -> bytes:
    """RFC 4180: header row, CRLF line ends, fields quoted when they hold a comma, quote or line break;
    text cells that would start a spreadsheet formula are prefixed with `'` (`escape_formula`); money
    columns (MONEY) at `minor_unit` decimals when it is given."""
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, lineterminator="\r\n", quoting=csv.QUOTE_MINIMAL)
    writer.writerow(table.column_names)
    formatters = [
        _text_value
        if _is_text(field.type)
        else money_value(minor_unit)
        if minor_unit is not None and field.type == MONEY
        else _csv_value
        for field in table.schema
    ]
    for batch in table.to_batches():
        columns = [
            [format_value(v) for v in column.to_pylist()]
            for format_value, column in zip(formatters, batch.columns, strict=True)
        ]
        writer.writerows(zip(*columns, strict=True))
    return buffer.getvalue().encode("utf-8")


def report_files(table: pa.Table, minor_unit: int | None = None) -> dict[str, bytes]:
    """The Parquet (exact values) and the CSV (money at `minor_unit` decimals, when given) of a report."""
    return {"parquet": parquet_bytes(table), "csv": csv_bytes(table, minor_unit)}
