"""`chargeback report DAY|MONTH` as a user meets it: the installed command run as a subprocess over a
reports folder a backfill published, judged by what it prints (aligned table with a totals row, CSV,
JSON) against the published Parquet, and by its one-line errors."""

import csv
import io
import json
import os
import shutil
import subprocess
import sys
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import dagster as dg
import pyarrow.parquet as pq
import pytest

from chargeback_pipeline.cli.backfill import backfill
from chargeback_pipeline.sources.simulated.resource import SimulatedSourceResource
from chargeback_pipeline.storage import keys
from chargeback_pipeline_tests.conftest import local_resources, pipeline

CHARGEBACK = str(Path(sys.executable).with_name("chargeback"))
DAY = date(2026, 11, 20)
CENT = Decimal("0.01")


@pytest.fixture(scope="module")
def published(tmp_path_factory) -> Path:
    """A folder whose `reports` holds what a backfill of DAY published."""
    folder = tmp_path_factory.mktemp("report")
    resources = local_resources(folder, SimulatedSourceResource(simulated_requests_per_hour=200))
    with dg.instance_for_test() as instance:
        backfill(DAY, DAY, pipeline(resources), instance)
    return folder


def report(folder: Path, *args: str) -> subprocess.CompletedProcess:
    env = {name: value for name, value in os.environ.items() if not name.startswith(("CHARGEBACK_", "DAGSTER_"))}
    env |= {
        "CHARGEBACK_OUTPUT_DIR": str(folder / "reports"),
        "CHARGEBACK_LAKE_DIR": str(folder / "lake"),
        "DAGSTER_HOME": str(folder / "dagster_home"),
    }
    return subprocess.run(
        [CHARGEBACK, "report", *args], env=env, cwd=folder, capture_output=True, text=True, timeout=120
    )


def chargeback_per_product(folder: Path) -> dict[str, Decimal]:
    lines = pq.read_table(folder / f"reports/daily/usage_date={DAY}/chargeback.parquet").to_pylist()
    totals: dict[str, Decimal] = {}
    for line in lines:
        totals[line["product_id"]] = totals.get(line["product_id"], Decimal(0)) + line["total_cost"]
    return totals


def money(text: str) -> Decimal:
    return Decimal(text.replace(",", ""))


def test_a_day_prints_an_aligned_table_with_a_totals_row(published):
    done = report(published, str(DAY))

    assert done.returncode == 0, done.stderr
    table, heading, capacity = done.stdout.partition("\n\nPTU capacity, 24 hours measured, at the pricing file's")
    title, header, rule, *body = table.rstrip("\n").splitlines()
    assert (
        title == f"{DAY} chargeback per product, from {published / 'reports'}/daily/usage_date={DAY}/chargeback.parquet"
    )
    assert header.split()[:2] == ["product", "currency"] and header.endswith("total")
    assert body[-2] == rule and set(rule) == {"-", " "}
    rows, total = body[:-2], body[-1]
    assert len({len(line) for line in [header, rule, *rows, total]}) == 1  # every column aligned
    expected = chargeback_per_product(published)
    printed = {line.split()[0]: money(line.split()[-1]) for line in rows}
    assert printed == {product: cost.quantize(CENT) for product, cost in expected.items()}
    assert all(len(line.split()[-1].split(".")[1]) == 2 for line in [*rows, total])  # at the minor unit
    assert total.split()[:2] == ["TOTAL", "USD"]
    assert money(total.split()[-1]) == sum(printed.values()) == sum(expected.values()).quantize(CENT)
    # then the day's PTU capacity, computed from the lake: the month holds this day only, so it is the
    # month's published capacity file
    ptu = pq.read_table(published / "reports" / keys.ptu_capacity_key(date(2026, 11, 1), "parquet")).to_pylist()
    assert heading and ptu
    for row in ptu:
        line = next(line for line in capacity.splitlines() if f"{row['backend_id']}/{row['deployment_name']} " in line)
        assert f"utilisation {row['utilization_percent']:.1f} %" in line
        assert f"unused {row['unused_cost']:,.2f} {row['currency']}" in line


def test_a_day_whose_lake_is_elsewhere_says_its_capacity_is_not_measured(published, tmp_path):
    moved = tmp_path / "copy"
    shutil.copytree(published / "reports", moved / "reports")  # the reports without the lake beside them

    done = report(moved, str(DAY))

    assert done.returncode == 0, done.stderr
    assert f"PTU capacity: no measured hour of {DAY} in the lake at {moved / 'lake'}" in done.stdout
    assert "unused PTU capacity:" not in done.stdout


def test_a_month_prints_its_published_statement(published):
    done = report(published, "2026-11")

    assert done.returncode == 0, done.stderr
    statement = pq.read_table(published / "reports/monthly/month=2026-11/statement.parquet").to_pylist()
    table, heading, capacity = done.stdout.partition("\n\nPTU capacity, 24 hours measured, at the pricing file's")
    lines = table.splitlines()
    assert lines[0].startswith("2026-11 monthly statement per product, from ")
    rows = {line.split()[0]: line.split() for line in lines[3:-2]}
    assert {p: money(cells[-2]) for p, cells in rows.items()} == {r["product_id"]: r["total_cost"] for r in statement}
    assert {cells[-1] for cells in rows.values()} == {"1"}  # days covered
    assert money(lines[-1].split()[-2]) == sum(r["total_cost"] for r in statement)
    # then each PTU deployment's unused capacity, as the month's published capacity file states it
    ptu = pq.read_table(published / "reports" / keys.ptu_capacity_key(date(2026, 11, 1), "parquet")).to_pylist()
    assert heading and ptu
    for row in ptu:
        line = next(line for line in capacity.splitlines() if f"{row['backend_id']}/{row['deployment_name']} " in line)
        assert f"unused {row['unused_cost']:,.2f} {row['currency']}" in line


def test_csv_and_json_for_scripts(published):
    expected = chargeback_per_product(published)

    as_csv = report(published, str(DAY), "--format", "csv")
    assert as_csv.returncode == 0, as_csv.stderr
    assert as_csv.stdout.startswith("product_id,currency,calls,prompt_tokens,completion_tokens,total_tokens,")
    rows = list(csv.DictReader(io.StringIO(as_csv.stdout, newline="")))
    assert {r["product_id"]: Decimal(r["total_cost"]) for r in rows} == expected  # no totals row, no separators
    assert all(len(r["total_cost"].split(".")[1]) == 2 for r in rows)

    as_json = report(published, str(DAY), "--format", "json")
    assert as_json.returncode == 0, as_json.stderr
    document = json.loads(as_json.stdout)
    assert (document["period"], document["report"]) == (str(DAY), "chargeback")
    assert {p["product_id"]: Decimal(p["total_cost"]) for p in document["products"]} == expected
    [totals] = document["totals"]
    assert totals["currency"] == "USD" and totals["product_id"] == "TOTAL"
    for column in ("calls", "total_tokens"):
        assert totals[column] == sum(p[column] for p in document["products"])
    for column in ("ptu_usage_cost", "ptu_unused_cost", "paygo_cost", "total_cost"):
        assert Decimal(totals[column]) == sum(Decimal(p[column]) for p in document["products"])
    assert Decimal(totals["total_cost"]) == sum(expected.values())


def test_a_day_without_pricing_shows_its_usage_report(published, tmp_path):
    day_folder = tmp_path / f"reports/daily/usage_date={DAY}"
    day_folder.mkdir(parents=True)
    shutil.copy(published / f"reports/daily/usage_date={DAY}/product_usage.parquet", day_folder)

    done = report(tmp_path, str(DAY))

    assert done.returncode == 0, done.stderr
    usage = pq.read_table(day_folder / "product_usage.parquet")
    lines = done.stdout.splitlines()
    assert lines[0].startswith(f"{DAY} usage (no pricing: tokens only) per product, from ")
    assert lines[1].split() == ["product", "calls", "prompt", "tokens", "completion", "tokens", "total", "tokens"]
    assert int(lines[-1].split()[-1].replace(",", "")) == sum(usage["total_tokens"].to_pylist())


def test_a_missing_report_says_what_to_run(tmp_path):
    yesterday = datetime.now(UTC).date() - timedelta(days=1)
    cases = {
        "2026-11-21": f"Error: no chargeback of 2026-11-21 at {tmp_path}/reports/daily/usage_date=2026-11-21/"
        "chargeback.parquet: run `chargeback backfill 2026-11-21`",
        "yesterday": f"Error: no chargeback of {yesterday} at {tmp_path}/reports/daily/usage_date={yesterday}/"
        f"chargeback.parquet: run `chargeback backfill {yesterday}`",
        "2026-10": f"Error: no statement of 2026-10 at {tmp_path}/reports/monthly/month=2026-10/statement.parquet: "
        "run `chargeback backfill 2026-10-01 2026-10-31`",
        "2099-01": f"Error: Invalid value for 'DAY|MONTH': 2099-01 is after today ({datetime.now(UTC).date()}, UTC): "
        "nothing is published for it yet",
        "2026-13": "Error: Invalid value for 'DAY|MONTH': '2026-13' is not a day (YYYY-MM-DD, 'today', 'yesterday') "
        "or a month (YYYY-MM)",
    }
    for argument, line in cases.items():
        done = report(tmp_path, argument)
        assert done.returncode == 2, (argument, done.stderr)
        assert done.stderr.strip().splitlines()[-1] == line
        assert "Traceback" not in done.stderr and done.stdout == ""


def test_a_damaged_report_is_one_line_naming_the_file(published, tmp_path):
    folder = tmp_path / "damaged"
    shutil.copytree(published / "reports", folder / "reports")
    damaged = folder / f"reports/daily/usage_date={DAY}/chargeback.parquet"
    damaged.write_bytes(damaged.read_bytes()[:100])  # cut short, as by a copy that failed

    done = report(folder, str(DAY))

    assert done.returncode == 1 and done.stdout == ""
    [line] = done.stderr.splitlines()
    assert line.startswith(f"Error: {damaged} is not a readable Parquet file (")
    assert line.endswith(f"publish {DAY} again with `chargeback backfill`")


# The published CSVs of this day (200 requests an hour, no caller keys) as the code before the caller
# dimension wrote them (commit 3f3b680): with no CHARGEBACK_CALLER_TRACE_KEYS nothing published may change
# (README "Callers"). Re-pin only for a deliberate change of these files, saying which. Re-pinned once:
# the simulator's minute-level PTU load (its traffic changed), FOCUS AllocatedResourceId percent-encoded
# per segment, and the statement's PTU capacity columns. Re-pinned again: the cost basis (README "Actual
# cost": chargeback cost_basis/estimated_cost/billed_cost/export_run_id, FOCUS x_CostBasis/x_ExportRunId and
# the export's conditional columns, the statement's billed_cost/estimated_cost/actual_days/estimate_days).
# And again: the example pricing file's PTU counts (65 / 60, sized so the demo's week says "keep"): the PTU
# costs of the chargeback, FOCUS and statement changed; the usage report did not.
PUBLISHED_BEFORE_CALLERS = {
    f"daily/usage_date={DAY}/chargeback.csv": "49f1c0173b945e055205875b68a99d76b58980d5c1b65aa6b428ab95ef0bd2ce",
    f"daily/usage_date={DAY}/focus.csv": "d7bbe49ed16b291229818463728b9b3bc5aa00a7b028061b884a77b09263ca34",
    f"daily/usage_date={DAY}/product_usage.csv": "4b1f88a7616d6c9abeb0a67b12548448633e88fb9ea5084b8f3db19c680f189b",
    f"monthly/month={DAY:%Y-%m}/statement.csv": "73bce635f3c6c323131d515376723fa98826a466c77557e923f45aabfdf2e2ab",
}


def test_without_caller_keys_the_published_files_are_unchanged(published):
    import hashlib

    reports = published / "reports"
    digests = {name: hashlib.sha256((reports / name).read_bytes()).hexdigest() for name in PUBLISHED_BEFORE_CALLERS}

    assert digests == PUBLISHED_BEFORE_CALLERS
    assert not list(reports.rglob("statement_by_caller.*"))
