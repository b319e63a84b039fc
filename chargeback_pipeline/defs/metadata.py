"""Materialization metadata helpers: column schemas and small previews for the Dagster UI."""

import dagster as dg
import pyarrow as pa

# Every asset is owned by the FinOps data team (shown in the UI, and who alerts go to).
OWNERS = ["team:finops-data"]

_TYPE_NAMES = {pa.string(): "string", pa.bool_(): "boolean", pa.int64(): "bigint", pa.int32(): "integer"}


def _type_name(arrow_type: pa.DataType) -> str:
    if pa.types.is_timestamp(arrow_type):
        return "timestamp (UTC)"
    if pa.types.is_date(arrow_type):
        return "date"
    return _TYPE_NAMES.get(arrow_type, str(arrow_type))


def table_schema(schema: pa.Schema, descriptions: dict[str, str] | None = None) -> dg.TableSchema:
    descriptions = descriptions or {}
    return dg.TableSchema(
        columns=[
            dg.TableColumn(field.name, _type_name(field.type), description=descriptions.get(field.name))
            for field in schema
        ]
    )


def markdown_table(table: pa.Table, limit: int = 10) -> dg.MarkdownMetadataValue:
    """The first `limit` rows as a markdown table (pipes and newlines escaped)."""
    if table.num_rows == 0:
        return dg.MetadataValue.md("_no rows_")

    def cell(value) -> str:
        text = "" if value is None else f"{value:,}" if isinstance(value, int) else str(value)
        return text.replace("|", "\\|").replace("\n", " ")

    head = table.slice(0, limit).to_pylist()
    lines = ["| " + " | ".join(table.column_names) + " |", "|" + "---|" * table.num_columns]
    lines += ["| " + " | ".join(cell(row[c]) for c in table.column_names) + " |" for row in head]
    if table.num_rows > limit:
        lines.append(f"\n_{table.num_rows - limit:,} more rows_")
    return dg.MetadataValue.md("\n".join(lines))


def markdown_rows(rows: list[dict], limit: int = 10, empty: str = "_no rows_") -> dg.MarkdownMetadataValue:
    """Rows (dicts of one shape) as a markdown table, or `empty`."""
    return markdown_table(pa.Table.from_pylist(rows), limit=limit) if rows else dg.MetadataValue.md(empty)
