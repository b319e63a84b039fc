"""The published CSV is RFC 4180 and round-trips hostile product names; output is deterministic."""

import csv
import io
from datetime import UTC, date, datetime

import pyarrow as pa

from chargeback_pipeline.storage.report_files import csv_bytes, report_files

HOSTILE = ["comma, inside", 'quote " inside', "line\nbreak", "crlf\r\nbreak", "ünïcødé 製品 🚀", "", " padded "]


def usage_table(products) -> pa.Table:
    n = len(products)
    return pa.table(
        {
            "usage_date": pa.array([date(2026, 3, 10)] * n, pa.date32()),
            "product_id": products,
            "total_tokens": pa.array([2**40 + i for i in range(n)], pa.int64()),
            "first_seen": pa.array([datetime(2026, 3, 10, 8, 0, 0, 1, tzinfo=UTC)] * n, pa.timestamp("us", tz="UTC")),
        }
    )


def test_hostile_product_names_round_trip():
    data = csv_bytes(usage_table(HOSTILE))

    rows = list(csv.reader(io.StringIO(data.decode("utf-8"), newline="")))
    assert rows[0] == ["usage_date", "product_id", "total_tokens", "first_seen"]
    assert [row[1] for row in rows[1:]] == HOSTILE
    assert rows[1][2] == str(2**40) and rows[1][3] == "2026-03-10T08:00:00.000001Z"


def test_rfc4180_line_endings_and_quoting():
    data = csv_bytes(usage_table(["plain", 'say "hi"']))

    assert data.endswith(b"\r\n")
    assert data.split(b"\r\n")[2] == b'2026-03-10,"say ""hi""",1099511627777,2026-03-10T08:00:00.000001Z'


def test_empty_day_still_has_a_header():
    assert csv_bytes(usage_table([])) == b"usage_date,product_id,total_tokens,first_seen\r\n"


def test_same_table_same_bytes():
    assert report_files(usage_table(HOSTILE)) == report_files(usage_table(HOSTILE))


def test_booleans_are_written_true_and_false_in_every_csv():
    table = pa.table({"flag": pa.array([True, False, None], pa.bool_()), "n": [1, 2, 3]})

    assert csv_bytes(table).decode().split("\r\n") == ["flag,n", "true,1", "false,2", ",3", ""]
