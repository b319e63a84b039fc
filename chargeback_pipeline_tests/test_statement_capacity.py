"""Idle PTU capacity always visible, and a statement a finance reader gets: a simulated day at a quiet rate
(the example pricing file's 65 / 60 PTU mostly idle) published under the default `proportional` policy
and under `unallocated`; the statement's PTU capacity part, its interim mark and data stamp, a product
page's explanation, `chargeback report MONTH` run as a subprocess, and the overview printed to PDF by
headless Chromium on one page."""

import os
import re
import shutil
import subprocess
import sys
from datetime import date
from decimal import Decimal
from pathlib import Path

import dagster as dg
import pyarrow.parquet as pq
import pytest
import yaml

from chargeback_pipeline.cli.backfill import backfill
from chargeback_pipeline.defs.resources import PricingResource
from chargeback_pipeline.sources.simulated.resource import SimulatedSourceResource
from chargeback_pipeline_tests.conftest import REPO, local_resources, pipeline

CHARGEBACK = str(Path(sys.executable).with_name("chargeback"))
DAY = date(2026, 11, 19)
MONTH_FOLDER = "reports/monthly/month=2026-11"
RATE = 200


def publish(folder: Path, policy: str) -> Path:
    prices = yaml.safe_load((REPO / "pricing.example.yaml").read_text(encoding="utf-8"))
    prices["unused_capacity"] = {"policy": policy}
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "pricing.yaml").write_text(yaml.safe_dump(prices), encoding="utf-8")
    resources = local_resources(folder, SimulatedSourceResource(simulated_requests_per_hour=RATE))
    resources["pricing"] = PricingResource(path=str(folder / "pricing.yaml"))
    with dg.instance_for_test() as instance:
        backfill(DAY, DAY, pipeline(resources), instance)
    return folder


@pytest.fixture(scope="module")
def published(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("capacity")
    return {policy: publish(root / policy, policy) for policy in ("proportional", "unallocated")}


def figure(html: str, field: str) -> str:
    match = re.search(rf'data-field="{field}">([^<]*)<', html)
    assert match, field
    return match.group(1)


def test_unused_capacity_is_shown_under_every_policy_and_matches_the_allocations_own_figure(published):
    shown = {}
    for policy, folder in published.items():
        html = (folder / MONTH_FOLDER / "statement.html").read_text(encoding="utf-8")
        capacity = pq.read_table(folder / MONTH_FOLDER / "ptu_capacity.parquet").to_pylist()
        assert sorted((r["deployment_name"], r["ptu_count"]) for r in capacity) == [("gpt-4.1", 65), ("gpt-4o", 60)]
        idle = sum(r["unused_cost"] for r in capacity)
        ptu_cost = sum(r["ptu_cost"] for r in capacity)
        assert idle > ptu_cost / 2  # a quiet day: most PTU dollars bought idle capacity
        shown[policy] = figure(html, "ptu_idle_cost")
        assert shown[policy] == f"{idle.quantize(Decimal('0.01')):,} USD"
        assert f"{idle / ptu_cost * 100:.1f} %" in html
        # per deployment: count, rate, utilisation, unused amount and share, effective price per 1K tokens
        for row in capacity:
            line = re.search(
                rf'<tr data-deployment="aoai-ptu-eastus/{re.escape(row["deployment_name"])}">(.*?)</tr>', html
            )
            assert line, row["deployment_name"]
            assert f">{row['ptu_count']}<" in line.group(1) and "per PTU" in line.group(1)
            assert f"{row['utilization_percent']:.1f} %" in line.group(1)
            assert f"{row['unused_share_percent']:.1f} %" in line.group(1)
            assert f"{row['effective_price_per_1k_tokens'].normalize():f} USD" in line.group(1)
    # The policy decides who pays for idle capacity, not whether it is shown: the same figure under both.
    assert shown["proportional"] == shown["unallocated"]
    # Independent evidence: under `unallocated` the allocation itself bills the idle part apart (its own code,
    # hour by hour, from the chargeback lines); it is the capacity part's figure within a cent an hour.
    statement = pq.read_table(published["unallocated"] / MONTH_FOLDER / "statement.parquet").to_pylist()
    allocated_idle = sum(r["ptu_unused_cost"] for r in statement)
    capacity = pq.read_table(published["unallocated"] / MONTH_FOLDER / "ptu_capacity.parquet").to_pylist()
    assert abs(allocated_idle - sum(r["unused_cost"] for r in capacity)) <= Decimal("0.01") * 24 * 2
    # Under `proportional` nothing is billed apart, yet the statement no longer reads as if nothing was idle.
    proportional = pq.read_table(published["proportional"] / MONTH_FOLDER / "statement.parquet").to_pylist()
    assert sum(r["ptu_unused_cost"] for r in proportional) == 0


def test_the_statement_is_marked_interim_stamped_and_explains_a_products_ptu_share(published):
    html = (published["proportional"] / MONTH_FOLDER / "statement.html").read_text(encoding="utf-8")
    assert 'id="interim"' in html and "1 of 30 days in" in html
    assert "Generated from the data up to 2026-11-20 00:00 UTC." in html
    assert html.count('class="note ptu-explained"') >= 3  # every product with PTU usage
    assert "its part of each day&#39;s PTU cost" in html or "its part of each day's PTU cost" in html
    shares = re.findall(r'data-field="ptu_day_share">([0-9.]+ %)<', html)
    # one day published: the products' parts of its PTU cost add up to the whole (each rounded to 0.1 %)
    assert shares and abs(sum(float(s.split()[0]) for s in shares) - 100) <= 0.05 * len(shares)


def report(folder: Path, *args: str) -> subprocess.CompletedProcess:
    env = {name: value for name, value in os.environ.items() if not name.startswith(("CHARGEBACK_", "DAGSTER_"))}
    env |= {
        "CHARGEBACK_OUTPUT_DIR": str(folder / "reports"),
        "CHARGEBACK_LAKE_DIR": str(folder / "lake"),
        "CHARGEBACK_PRICING_FILE": str(folder / "pricing.yaml"),
        "DAGSTER_HOME": str(folder / "dagster_home"),
    }
    return subprocess.run(
        [CHARGEBACK, "report", *args], env=env, cwd=folder, capture_output=True, text=True, timeout=120
    )


@pytest.mark.parametrize("period", ["2026-11", str(DAY)])
@pytest.mark.parametrize("policy", ["proportional", "unallocated"])
def test_chargeback_report_shows_utilisation_and_unused_capacity_under_every_policy(published, policy, period):
    """The month from its published capacity file; the day computed by the CLI from the lake's hours. The
    month holds this one day only, so both must state the published file's numbers."""
    folder = published[policy]
    result = report(folder, period)
    assert result.returncode == 0, result.stderr
    capacity = pq.read_table(folder / MONTH_FOLDER / "ptu_capacity.parquet").to_pylist()
    assert (
        "PTU capacity, 24 hours measured, at the pricing file's PTU rates (an estimate, not Azure's bill; "
        "unused capacity is paid under every policy):"
    ) in result.stdout
    for row in capacity:
        assert f"aoai-ptu-eastus/{row['deployment_name']}" in result.stdout
        assert f"utilisation {row['utilization_percent']:.1f} %" in result.stdout
        assert f"unused {row['unused_cost']:,.2f} USD ({row['unused_share_percent']:.1f} % of" in result.stdout
    idle = sum(r["unused_cost"] for r in capacity)
    assert f"unused PTU capacity: {idle:,.2f} USD" in result.stdout
    assert f"policy {policy} decides who pays it" in result.stdout


def pdf_pages(pdf: bytes) -> int:
    """Page objects of a PDF (Chromium writes each page's dictionary as plain text): `/Type /Page`, not
    `/Type /Pages`."""
    return len(re.findall(rb"/Type\s*/Page(?![a-zA-Z])", pdf))


def test_the_printed_overview_is_one_page_with_unused_capacity_on_it(published, tmp_path):
    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(chromium).is_file():
        pytest.skip("Chromium is not installed (apt-get install -y chromium)")
    page = published["proportional"] / MONTH_FOLDER / "statement.html"
    html = page.read_text(encoding="utf-8")
    products = html.count('<section class="page product-page"')
    pdf = tmp_path / "statement.pdf"
    subprocess.run(
        [
            chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-pdf-header-footer",
            f"--user-data-dir={tmp_path / 'profile'}", f"--print-to-pdf={pdf}", page.as_uri(),
        ],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    # Each product page starts a new page (CSS break-before): one page for the overview and one a product
    # means the overview fits one page (and no product page spills onto a second).
    assert pdf_pages(pdf.read_bytes()) == 1 + products
    overview = html.split('<section class="page product-page"')[0]
    assert 'id="ptu-capacity"' in overview and 'data-field="ptu_idle_cost"' in overview
