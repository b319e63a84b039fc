"""The HTML monthly statement as finance meets it: published to Blob (Azurite) beside the statement's
Parquet, downloaded, opened in headless Chromium, its figures read off the page and compared with the
Parquet read back; self-contained (nothing fetched, no URL), escaped, print-friendly, and its figures in
the asset's metadata preview."""

import base64
import re
import uuid
import warnings
from datetime import date
from decimal import Decimal

import dagster as dg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from azure.storage.blob import ContainerClient

from chargeback_pipeline.cli.backfill import backfill
from chargeback_pipeline.core import reconciliation
from chargeback_pipeline.core.billing import statement_charts, statement_html, statements
from chargeback_pipeline.core.billing.schemas import DAILY_CHARGEBACK_SCHEMA
from chargeback_pipeline.defs.resources import ObjectStoreResource
from chargeback_pipeline.sources.simulated.resource import SimulatedSourceResource
from chargeback_pipeline.storage import keys
from chargeback_pipeline_tests.conftest import local_resources, pipeline

DAYS = [date(2026, 11, 19), date(2026, 11, 20)]
MONTH = date(2026, 11, 1)
RATE = 200
CENT = Decimal("0.01")


def shown(amount: Decimal) -> str:
    """How a USD amount must read on the page: cents, thousands separators."""
    return f"{amount.quantize(CENT):,}"


@pytest.fixture(scope="module")
def published(tmp_path_factory, azurite_connection_string):
    """Two days backfilled with the reports on Blob; the month's statement files as published."""
    folder = tmp_path_factory.mktemp("statement")
    container_name = f"statement-{uuid.uuid4().hex[:8]}"
    resources = local_resources(folder, SimulatedSourceResource(simulated_requests_per_hour=RATE))
    resources["reports"] = ObjectStoreResource(
        blob_connection_string=azurite_connection_string, blob_container=container_name
    )
    with dg.instance_for_test() as instance:
        [chunk] = backfill(DAYS[0], DAYS[-1], pipeline(resources), instance, days_per_run=2)
    container = ContainerClient.from_connection_string(azurite_connection_string, container_name)
    html = container.download_blob(keys.statement_key(MONTH, "html")).readall()
    parquet = container.download_blob(keys.statement_key(MONTH, "parquet")).readall()
    page = folder / "statement.html"  # as a finance person saves it from Blob
    page.write_bytes(html)
    return {
        "folder": folder,
        "chunk": chunk,
        "html": html.decode("utf-8"),
        "page": page,
        "statement": pq.read_table(pa.BufferReader(parquet)),
    }


@pytest.fixture(scope="module")
def browser():
    """Headless Chromium, set up as test_ui.py sets it up (skipped where Chromium is not installed)."""
    test_ui = pytest.importorskip("chargeback_pipeline_tests.test_ui")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = test_ui.CHROMIUM
    for argument in test_ui.BROWSER_OPTIONS:
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(test_ui.CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(test_ui.WAIT_SECONDS)
    try:
        yield driver
    finally:
        driver.quit()


def test_the_statement_in_chromium_shows_the_parquets_totals(published, browser):
    from selenium.webdriver.common.by import By

    browser.get(published["page"].as_uri())
    statement = published["statement"].to_pylist()
    assert len(statement) > 3 and {r["currency"] for r in statement} == {"USD"}

    # The overview's product table: every product once, each amount as the Parquet has it, to the cent.
    on_page = {}
    for row in browser.find_elements(By.CSS_SELECTOR, "#products tr.product-row"):
        cells = {
            cell.get_attribute("data-field"): cell.text for cell in row.find_elements(By.CSS_SELECTOR, "td[data-field]")
        }
        on_page[row.get_attribute("data-product")] = cells
    assert on_page == {
        r["product_id"]: {c: shown(r[c]) for c in ("ptu_usage_cost", "ptu_unused_cost", "paygo_cost", "total_cost")}
        for r in statement
    }
    total = sum(r["total_cost"] for r in statement)
    assert browser.find_element(By.CSS_SELECTOR, "dd.grand-total").text == f"{shown(total)} USD"
    total_row = browser.find_element(By.CSS_SELECTOR, "#products tr.total td[data-field=total_cost]")
    assert total_row.text == shown(total)
    assert sum(Decimal(c["total_cost"].replace(",", "")) for c in on_page.values()) == total.quantize(CENT)

    # One page a product, with its own total, each starting a new printed page.
    pages = browser.find_elements(By.CSS_SELECTOR, "section.product-page")
    assert sorted(p.get_attribute("data-product") for p in pages) == sorted(r["product_id"] for r in statement)
    by_product = {r["product_id"]: r for r in statement}
    for page in pages:
        stated = by_product[page.get_attribute("data-product")]
        figure = page.find_element(By.CSS_SELECTOR, "dl.figures dd[data-field=total_cost]")
        assert figure.text == f"{shown(stated['total_cost'])} USD"
        assert browser.execute_script("return getComputedStyle(arguments[0]).breakBefore", page) == "page"

    # Every chart drawn (an SVG of the page itself), nothing fetched from anywhere.
    charts = browser.find_elements(By.CSS_SELECTOR, "img.chart")
    assert len(charts) == len(statement) + 2  # a daily chart a product, the overview's two
    assert all(browser.execute_script("return arguments[0].naturalWidth", chart) > 100 for chart in charts)
    fetched = browser.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
    assert [name for name in fetched if not name.startswith("data:")] == []


def test_each_days_reconciliation_status_is_on_the_page(published, browser):
    from selenium.webdriver.common.by import By

    browser.get(published["page"].as_uri())
    rows = browser.find_elements(By.CSS_SELECTOR, "#days tbody tr")
    status = {row.get_attribute("data-day"): row.get_attribute("data-status") for row in rows}
    lake = ObjectStoreResource(local_dir=str(published["folder"] / "lake")).lake()
    for day in DAYS:
        verdicts = lake.read(keys.day_key(keys.DAILY_RECONCILIATION, day))["day_verdict"].to_pylist()
        expected = max((statements.VERDICT_STATUS[v] for v in verdicts), key=statements.DAY_STATUSES.index)
        assert status[str(day)] == expected
    # The days before and after are one row each: no chargeback, not zero.
    assert status["2026-11-01"] == status["2026-11-21"] == "no chargeback"
    assert rows[0].text.startswith("2026-11-01 to 2026-11-18, 18 days")
    assert len(rows) == 4


def test_the_statement_is_self_contained(published):
    html = published["html"]
    assert html.startswith("<!DOCTYPE html>")
    assert not re.search(r"(?i)https?://|//[a-z0-9.-]+\.[a-z]{2,}/", html)  # no URL at all, not even a namespace
    assert not re.search(r"(?i)<script|<link|<iframe|@import|url\(", html)
    # Charts are images of the file itself.
    sources = re.findall(r'<img [^>]*src="([^"]+)"', html)
    assert sources and all(s.startswith("data:image/svg+xml;base64,") for s in sources)


def test_the_same_figures_are_in_the_assets_metadata_preview(published):
    [materialization] = published["chunk"].monthly.asset_materializations_for_node("monthly_statement")
    metadata = materialization.metadata
    preview = metadata["statement_preview"].value
    statement = published["statement"].to_pylist()
    for row in statement:
        line = next(line for line in preview.splitlines() if line.startswith(f"| {row['product_id']} |"))
        assert f"| {shown(row['total_cost'])} | {shown(row['ptu_usage_cost'])} |" in line
    assert f"| USD | {shown(sum(r['total_cost'] for r in statement))} |" in preview
    assert "| 2026-11-19 | " in preview and "2026-11-01 to 2026-11-18, 18 days | no chargeback" in preview
    assert metadata["statement_html"].value.endswith("monthly/month=2026-11/statement.html")
    assert metadata["days_needing_attention"].value == 0


def lines_of(rows: list[dict]) -> pa.Table:
    """Daily chargeback lines with these values (the rest zero)."""
    base = {
        "usage_date": DAYS[0],
        "product_id": "p",
        "subscription_id": None,
        "model_name": "gpt-4.1",
        "deployment_name": "d",
        "backend_id": "b",
        "cost_type": "ptu",
        "calls": 1,
        "prompt_tokens": 10,
        "completion_tokens": 5,
        "total_tokens": 15,
        "weighted_tokens": Decimal(30),
        "output_token_weight": Decimal(4),
        "ptu_cost": Decimal(0),
        "paygo_cost": Decimal(0),
        "total_cost": Decimal(0),
        "currency": "USD",
        "rate_effective_from": date(2026, 1, 1),
    }
    return pa.Table.from_pylist([base | row for row in rows], schema=DAILY_CHARGEBACK_SCHEMA)


def view_of(lines: pa.Table, statuses: list[dict] | None = None) -> dict:
    statuses = statuses or [statements.day_status(day, True, None) for day in DAYS]
    return statement_html.statement_view(
        MONTH,
        statements.monthly_statement(lines, MONTH),
        statements.statement_days(lines, MONTH),
        statements.statement_models(lines, MONTH),
        statuses,
    )


def test_product_names_are_text_never_markup():
    name = '<script>alert("x")</script> & <img src=x onerror=alert(1)>'
    lines = lines_of([{"product_id": name, "ptu_cost": Decimal("1.5"), "total_cost": Decimal("1.5")}])

    html = statement_html.render_html(view_of(lines))

    assert "<script" not in html and "<img src=x" not in html
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; &amp; &lt;img src=x onerror=alert(1)&gt;" in html


def test_chart_labels_draw_any_product_id_without_a_warning():
    """Control characters have no glyph and `$...$` would be mathtext: the chart draws them plainly, one bar
    each even when two ids print alike, and the exact ids stay in the page's tables."""
    costs = {"a\r\tb": Decimal("1"), "a\t\rb": Decimal("2"), "$\\frac$ x": Decimal("3")}

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        uri = statement_charts.cost_by_product_chart(costs, "USD")

    svg = base64.b64decode(uri.removeprefix("data:image/svg+xml;base64,")).decode("utf-8")
    labels = re.findall(r">([^<]*)</text>", svg)
    assert labels.count("a  b") == 2 and "$\\frac$ x" in labels
    # One bar a product; the figure, the axes and the two drawn spines are patches too.
    assert svg.count('<g id="patch_') - 4 == len(costs)


def test_breakdowns_add_up_to_the_statement_or_nothing_is_rendered():
    lines = lines_of(
        [
            {"ptu_cost": Decimal("10.25"), "total_cost": Decimal("10.25")},
            {
                "usage_date": DAYS[1],
                "cost_type": "ptu_unused",
                "ptu_cost": Decimal("2.5"),
                "total_cost": Decimal("2.5"),
            },
            {"usage_date": DAYS[1], "cost_type": "paygo", "paygo_cost": Decimal("0.3"), "total_cost": Decimal("0.3")},
        ]
    )
    view = view_of(lines)
    [product] = view["products"]
    assert (product["total_cost"], product["ptu_usage_cost"], product["ptu_unused_cost"], product["paygo_cost"]) == (
        "13.05",
        "10.25",
        "2.50",
        "0.30",
    )
    assert [(m["cost_type"], m["total_cost"]) for m in product["models"]] == [
        ("Pay-as-you-go", "0.30"),
        ("PTU usage", "10.25"),
        ("Unused PTU capacity", "2.50"),
    ]
    assert view["currencies"][0]["unused_share"] == "19.6 %"  # 2.50 of 12.75 PTU cost

    statement = statements.monthly_statement(lines, MONTH)
    tampered = statement.set_column(
        statement.schema.get_field_index("total_cost"),
        "total_cost",
        pa.array([Decimal("13.06")], statement.schema.field("total_cost").type),
    )
    with pytest.raises(statement_html.StatementMismatch, match=r"p \(USD\): its days add up to 13.05"):
        statement_html.statement_view(
            MONTH, tampered, statements.statement_days(lines, MONTH), statements.statement_models(lines, MONTH), []
        )


def test_a_day_published_by_override_or_without_reconciliation_says_so():
    row = {
        "unattributed_prompt_tokens": 900,
        "unattributed_completion_tokens": 100,
        "unattributed_percent": -30.0,
        "day_verdict": "block",
    }
    blocked = pa.Table.from_pylist([row])
    override = {"usage_date": "2026-11-19", "blocked": ["d: 30% unattributed"], "reason": "INC-7"}

    assert statements.day_status(DAYS[0], True, blocked, override=override) == {
        "usage_date": DAYS[0],
        "status": statements.OVERRIDDEN,
        "unattributed_tokens": 1000,
        "worst_unattributed_percent": 30.0,
        "note": "INC-7: d: 30% unattributed",
    }
    off = statements.day_status(DAYS[0], True, None, reconciliation_off={"reason": "switched off"})
    assert (off["status"], off["note"]) == (statements.NOT_RECONCILED, "switched off")
    assert statements.day_status(DAYS[0], False, blocked)["status"] == statements.NO_CHARGEBACK
    warned = pa.Table.from_pylist([row | {"day_verdict": "warn"}, row | {"day_verdict": "ok"}])
    assert statements.day_status(DAYS[0], True, warned)["status"] == "warning"
    # Every verdict the reconciliation gives has a status.
    assert set(statements.VERDICT_STATUS) == set(reconciliation.SEVERITY)

    view = view_of(lines_of([]), [statements.day_status(DAYS[0], True, blocked, override=override)])
    assert view["issues"] == 1
    assert "published despite blocked reconciliation" in statement_html.render_html(view)


def test_rendering_is_byte_identical_for_the_same_statement():
    lines = lines_of([{"ptu_cost": Decimal("1"), "total_cost": Decimal("1")}])
    assert statement_html.render_html(view_of(lines)) == statement_html.render_html(view_of(lines))
