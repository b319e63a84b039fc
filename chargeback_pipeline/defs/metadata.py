"""Materialization metadata helpers: small previews, money, and each partition's own numbers (the column
schemas are declared with the definitions: `column_docs`).

In a ranged run every partition's materialization carries that partition's own numbers
(`record_partition`), so the UI's plots over partitions draw a value per hour or day; the run's totals go
to the run's log (`log_run_totals`). Empty values are left out rather than shown as `[]`.
"""

from collections.abc import Mapping
from decimal import Decimal

import dagster as dg
import pyarrow as pa

from chargeback_pipeline.core.identifier_text import markdown_text
from chargeback_pipeline.defs.dagster_internals import one_event_per_millisecond


def markdown_table(
    table: pa.Table, limit: int = 10, currency: str | None = None, minor_unit: int = 2, money_columns=()
) -> dg.MarkdownMetadataValue:
    """The first `limit` rows as a markdown table (pipes and newlines escaped). Money cells (Decimal, or
    a column of `money_columns`) are written by `money_text`, in `currency` or else the row's own
    `currency` column: `1,260.60 USD`."""
    if table.num_rows == 0:
        return dg.MetadataValue.md("_no rows_")

    def cell(row: dict, column: str) -> str:
        value = row[column]
        if value is not None and (isinstance(value, Decimal) or column in money_columns):
            text = money_text(value, currency or row.get("currency") or "", minor_unit).strip()
        elif isinstance(value, str):  # an identifier is text, never markup (core/identifier_text.py)
            return markdown_text(value)
        else:
            text = _cell_text(value)
        return text.replace("|", "\\|").replace("\n", " ")

    head = table.slice(0, limit).to_pylist()
    lines = ["| " + " | ".join(table.column_names) + " |", "|" + "---|" * table.num_columns]
    lines += ["| " + " | ".join(cell(row, c) for c in table.column_names) + " |" for row in head]
    if table.num_rows > limit:
        lines.append(f"\n_{table.num_rows - limit:,} more rows_")
    return dg.MetadataValue.md("\n".join(lines))


def markdown_rows(
    rows: list[dict],
    limit: int = 10,
    empty: str = "_no rows_",
    currency: str | None = None,
    minor_unit: int = 2,
    money_columns=(),
) -> dg.MarkdownMetadataValue:
    """Rows (dicts of one shape) as a markdown table (money as in `markdown_table`), or `empty`."""
    if not rows:
        return dg.MetadataValue.md(empty)
    return markdown_table(pa.Table.from_pylist(rows), limit, currency, minor_unit, money_columns)


def _cell_text(value) -> str:
    """Counts with thousands separators; booleans as true/false."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int | float):
        return f"{value:,}"
    return str(value)


def is_empty(value) -> bool:
    return value is None or (isinstance(value, list | tuple | dict | set | str) and len(value) == 0)


def compact(metadata: Mapping[str, object]) -> dict[str, object]:
    """`metadata` without its empty values (None, [], {}, ""): absent, not shown as `[]`."""
    return {name: value for name, value in metadata.items() if not is_empty(value)}


def money(amount: Decimal | int | float, minor_unit: int = 2) -> float:
    """A plot series only (the UI plots numbers, not text): an amount at the currency's minor unit, the
    currency in its own `currency` entry. Every other amount in metadata is `money_value`/`money_text`."""
    return float(round(Decimal(str(amount)), minor_unit))


def money_text(amount: Decimal | int | float, currency: str, minor_unit: int = 2) -> str:
    """`1,260.60 USD`: an amount at the currency's minor unit (half to even), with thousands separators
    and the currency. The one way money is written in metadata: single values (`money_value`), table
    cells (`markdown_table`), descriptions and the run's log."""
    number = f"{round(Decimal(str(amount)), minor_unit):,.{minor_unit}f}"
    return f"{number} {currency}" if currency else number


def money_value(amount: Decimal | int | float, currency: str, minor_unit: int = 2) -> dg.TextMetadataValue:
    """A single amount of metadata, shown as `money_text` (`1,260.60 USD`)."""
    return dg.MetadataValue.text(money_text(amount, currency, minor_unit))


def record_partition(
    context: dg.AssetExecutionContext,
    partition_key: str,
    metadata: Mapping[str, object],
    asset_key: dg.AssetKey | None = None,
) -> None:
    """Put `metadata` (the partition's own numbers, previews...) on that partition's materialization only,
    leaving empty values out. Each partition's materialization gets its own millisecond, so the UI's Events
    tab lists every one (`dagster_internals.one_event_per_millisecond`)."""
    one_event_per_millisecond(context.log)
    context.add_asset_metadata(compact(metadata), asset_key=asset_key, partition_key=partition_key)


def log_run_totals(context: dg.AssetExecutionContext, what: str, partitions: int, totals: Mapping[str, object]) -> None:
    """The run's totals over its partitions, in the run's log (each partition's event has its own numbers)."""
    shown = ", ".join(
        f"{name} {value:,}"
        if isinstance(value, int | float | Decimal) and not isinstance(value, bool)
        else f"{name} {value}"
        for name, value in totals.items()
    )
    context.log.info(f"{what}: run totals over {partitions} partition{'s' if partitions != 1 else ''}: {shown}")
