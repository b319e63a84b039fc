"""The Dagster UI tells the truth at a glance, in a real browser: a day backfilled by `chargeback backfill`
(the demo's way) shows in the runs list as its named jobs, the asset graph shows every asset with its
checks passed, a check shows its result with the partition it judged, and a partitioned asset's page
shows each partition's own numbers and the columns it declares.

Debian's chromium is driven headless by selenium through chromium-driver; the real `dagster-webserver`
serves the repository's workspace.yaml over the backfill's DAGSTER_HOME. On failure each test saves a
screenshot and the page's text to test-artifacts/.
"""

import contextlib
import csv
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from chargeback_pipeline_tests.conftest import REPO, graphql

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
if not (Path(CHROMIUM).is_file() and Path(CHROMEDRIVER).is_file()):
    pytest.skip(
        "the UI tests need Debian's chromium and chromium-driver: `apt-get install chromium chromium-driver` "
        "as root (.ci/run installs them)",
        allow_module_level=True,
    )

from selenium import webdriver  # noqa: E402 (only once the browser is known to be there)
from selenium.common.exceptions import (  # noqa: E402
    ElementClickInterceptedException,
    StaleElementReferenceException,
    TimeoutException,
)
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

BIN = Path(sys.executable).parent
DAY = "2026-01-05"
HOURS = [f"{DAY}-{hour:02d}:00" for hour in range(24)]
JOBS = ("1_hourly_attribution_job", "2_daily_rollup_job", "3_monthly_statement_job")
LOCATION = "chargeback_pipeline.definitions"  # workspace.yaml's code location
ARTIFACTS = REPO / "test-artifacts"
WAIT_SECONDS = 30
BROWSER_OPTIONS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
    "--window-size=1600,1000",
)
LOADED = "{ repositoriesOrError { ... on RepositoryConnection { nodes { name } } } }"
CHECK_EXECUTIONS = """
query ($check: String!) {
  assetCheckExecutions(assetKey: {path: ["attributed_requests"]}, checkName: $check, limit: 100) {
    status
    partition
    runId
    evaluation { partition severity timestamp }
  }
  runsOrError { ... on Runs { results { jobName status } } }
}
"""


def environment(tmp_path: Path) -> dict:
    """The caller's environment without its CHARGEBACK_* and DAGSTER_* settings, pointed into tmp_path, with
    partitions starting on the backfilled day (as `make demo` and `make ui` share theirs)."""
    env = {name: value for name, value in os.environ.items() if not name.startswith(("CHARGEBACK_", "DAGSTER_"))}
    return env | {
        "DAGSTER_HOME": str(tmp_path / "dagster_home"),
        "CHARGEBACK_LAKE_DIR": str(tmp_path / "lake"),
        "CHARGEBACK_OUTPUT_DIR": str(tmp_path / "reports"),
        "CHARGEBACK_PRICING_FILE": str(REPO / "pricing.example.yaml"),
        "CHARGEBACK_PARTITIONS_START": DAY,
        "CHARGEBACK_SIMULATED_REQUESTS_PER_HOUR": "200",
        "CHARGEBACK_BUDGETS_FILE": str(REPO / "budgets.example.yaml"),
    }


@pytest.fixture(scope="module")
def ui(tmp_path_factory):
    """A day backfilled by the `chargeback` command, and the webserver over its DAGSTER_HOME (started
    while the backfill runs, so the two overlap)."""
    tmp_path = tmp_path_factory.mktemp("ui")
    env = environment(tmp_path)
    (tmp_path / "dagster_home").mkdir()
    shutil.copy(REPO / "dagster.yaml", tmp_path / "dagster_home" / "dagster.yaml")  # what `make` does
    # The instance's SQLite schema is created once before the two processes share it: a fresh DAGSTER_HOME
    # opened by the webserver and the CLI at the same moment races on it (`alembic_version`).
    subprocess.run([str(BIN / "dagster"), "instance", "migrate"], env=env, capture_output=True, check=True, timeout=120)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    log = (tmp_path / "webserver.log").open("wb")
    webserver = subprocess.Popen(
        [str(BIN / "dagster-webserver"), "-h", "127.0.0.1", "-p", str(port), "-w", "workspace.yaml"],
        cwd=REPO,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group: the code server it starts is stopped with it
    )
    url = f"http://127.0.0.1:{port}"
    try:
        command = [str(BIN / "chargeback"), "backfill", DAY]
        backfill = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
        assert backfill.returncode == 0, backfill.stdout + backfill.stderr
        deadline = time.monotonic() + 90
        while True:  # up, and the code location loaded (its repository listed)
            try:
                if graphql(url, LOADED)["repositoriesOrError"].get("nodes"):
                    break
            except OSError:
                pass
            if webserver.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"dagster-webserver did not come up: {(tmp_path / 'webserver.log').read_text()[-3000:]}")
            time.sleep(0.5)
        yield url, tmp_path
    finally:
        os.killpg(webserver.pid, signal.SIGTERM)
        try:
            webserver.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(webserver.pid, signal.SIGKILL)
            webserver.wait()
        log.close()


@pytest.fixture(scope="module")
def browser():
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    profile = tempfile.mkdtemp(prefix="chromium-profile-")
    for argument in (*BROWSER_OPTIONS, f"--user-data-dir={profile}"):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(WAIT_SECONDS)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


class Page:
    def __init__(self, driver, url: str):
        self.driver, self.url = driver, url

    def text(self) -> str:
        return self.driver.find_element(By.TAG_NAME, "body").text

    def open(self, path: str, *expected: str) -> str:
        """Open `path` and wait until the page shows every one of `expected`; its text."""
        self.driver.get(self.url + path)
        self.dismiss_welcome()
        WebDriverWait(self.driver, WAIT_SECONDS, poll_frequency=0.2).until(
            lambda _: all(text in self.text() for text in expected)
        )
        return self.text()

    def click(self, xpath: str) -> None:
        """Click the first visible element at `xpath`, once it shows and nothing covers it (a dialog's
        backdrop still fading in takes the click)."""
        WebDriverWait(self.driver, WAIT_SECONDS, poll_frequency=0.2).until(lambda _: self.try_click(xpath))

    def try_click(self, xpath: str) -> bool:
        """One attempt: click the first visible element at `xpath`; False when none shows or something
        covers it. The page may re-render between finding the element and clicking it: then also False.
        Dagster's welcome dialog may open seconds after the page (CI: it covered the button for a whole
        minute): every attempt dismisses it first."""
        self.dismiss_welcome()
        try:
            shown = [e for e in self.driver.find_elements(By.XPATH, xpath) if e.is_displayed()]
            if shown:
                shown[0].click()
            return bool(shown)
        except (ElementClickInterceptedException, StaleElementReferenceException):
            return False

    def dismiss_welcome(self) -> None:
        """Dagster's "Join the Dagster community" dialog of a first visit, if it shows."""
        with contextlib.suppress(ElementClickInterceptedException, StaleElementReferenceException):
            for button in self.driver.find_elements(By.XPATH, "//button[normalize-space()='Skip']"):
                if button.is_displayed():
                    button.click()  # (covered or gone: not the welcome dialog, or it is going away)

    def save(self, name: str) -> None:
        ARTIFACTS.mkdir(exist_ok=True)
        self.driver.save_screenshot(str(ARTIFACTS / f"{name}.png"))
        (ARTIFACTS / f"{name}.txt").write_text(f"{self.driver.current_url}\n\n{self.text()}", encoding="utf-8")


@pytest.fixture
def page(browser, ui, request):
    url, _ = ui
    failed_before = request.session.testsfailed
    shown = Page(browser, url)
    yield shown
    if request.session.testsfailed > failed_before:  # this test's call failed: keep what the browser showed
        shown.save(request.node.name)


def after(lines: list[str], label: str) -> str:
    """The line after `label` in a page's text: the value of a metadata row."""
    return lines[lines.index(label) + 1]


def entry(lines: list[str], label: str) -> str:
    """The value of a check's metadata row, shown as `label value` on one line."""
    return next(line.removeprefix(f"{label} ") for line in lines if line.startswith(f"{label} "))


def test_the_runs_list_shows_the_named_jobs(page):
    text = page.open("/runs", *JOBS)

    assert "__ephemeral_asset_job__" not in text
    assert text.count("Success") >= 3


def test_the_asset_graph_shows_every_group_and_the_assets_with_their_checks(page):
    groups = ("raw", "usage", "reconciliation", "reports", "costs")
    text = page.open("/asset-groups", "Global asset lineage", *(f"\n{group}\n" for group in groups))
    assert "Empty graph" not in text

    # Each asset node with its checks' status (loaded after the node): the hourly asset's 4, the daily one's 1.
    text = page.open(f"/locations/{LOCATION}/asset-groups/usage/lineage", "4 / 4 Passed", "1 / 1 Passed")
    assert {"attributed_requests", "quarantined_records", "daily_product_usage"} <= set(text.splitlines())
    assert "Failed" not in text


def test_a_check_shows_its_result_with_the_partition_it_judged(page, ui):
    url, _ = ui
    text = page.open(
        "/assets/attributed_requests?view=checks&checkDetail=gateway_log_complete",
        "Evaluation result",
        "Partition",
        HOURS[-1],
    )
    lines = text.splitlines()

    assert after(lines, "Evaluation result") == "Passed"
    assert after(lines, "Partition") == HOURS[-1]  # the latest execution, of the run's last hour
    # Behind the page: one passed execution per hour of the ranged run, none skipped.
    data = graphql(url, CHECK_EXECUTIONS, {"check": "gateway_log_complete"})
    executions = data["assetCheckExecutions"]
    assert sorted(e["partition"] for e in executions) == HOURS
    assert {e["status"] for e in executions} == {"SUCCEEDED"}
    assert all(e["evaluation"]["partition"] == e["partition"] for e in executions)
    # Each hour's result at its own millisecond: its own point in the check's plot (which plots by time).
    assert len({int(e["evaluation"]["timestamp"] * 1000) for e in executions}) == len(HOURS)
    assert {run["jobName"] for run in data["runsOrError"]["results"]} == set(JOBS)


def test_a_partitioned_assets_page_shows_each_partitions_own_numbers(page, ui):
    _, tmp_path = ui
    counts = {}
    for hour in (HOURS[3], HOURS[12]):
        path = f"/assets/attributed_requests?view=partitions&partition={hour}"
        lines = page.open(path, "billable_requests", "Materialized (24)", "1_hourly_attribution_job").splitlines()
        counts[hour] = int(after(lines, "dagster/row_count").replace(",", ""))
        written = tmp_path / f"lake/attributed_requests/hour={hour[:10]}T{hour[11:13]}/rows.parquet"
        assert counts[hour] == pq.ParquetFile(written).metadata.num_rows, hour  # the hour's own rows
        assert "Materialized (24)" in lines and "1_hourly_attribution_job" in " ".join(lines)
        assert "run_rows" not in lines
    assert counts[HOURS[3]] != counts[HOURS[12]]  # night and day: each hour its own number


def test_the_events_tab_lists_every_hours_materialization(page):
    # The run materialized 24 hours at once; each is listed (the UI keeps one event per run and millisecond).
    text = page.open("/assets/attributed_requests?view=events", "materialized in run", HOURS[-1])
    listed = {hour for hour in HOURS if hour in text}
    for _ in range(len(HOURS)):  # the list draws the rows in view: scrolled down to its earliest hour
        if HOURS[0] in listed:
            break
        earliest = page.driver.find_elements(By.XPATH, f"//*[normalize-space(text())='{min(listed)}']")
        page.driver.execute_script("arguments[0].scrollIntoView({block: 'start'});", earliest[0])
        time.sleep(0.3)
        listed |= {hour for hour in HOURS if hour in page.text()}

    assert sorted(listed) == HOURS


def test_an_assets_page_shows_its_columns_and_money_with_its_currency(page, ui):
    text = page.open("/assets/daily_chargeback", "Columns", "decimal(18,6) money", "cost_by_product", "USD")
    lines = text.splitlines()

    assert "decimal(18,6) money" in lines and "ISO 4217 currency of the costs (the pricing file's)." in lines
    metadata = lines[lines.index("Metadata") :]  # its rows: the key, its time, its value
    assert metadata[metadata.index("currency") + 2] == "USD"
    # At the minor unit, with thousands separators and the currency: the published file's total.
    assert metadata[metadata.index("total_cost") + 2] == usd(sum(column(ui[1], "chargeback", "total_cost")))
    assert "published_despite_blocked_reconciliation" not in text  # empty: left out


def report(tmp_path: Path, name: str) -> list[dict]:
    with open(tmp_path / f"reports/daily/usage_date={DAY}/{name}.csv", newline="") as file:
        return list(csv.DictReader(file))


def column(tmp_path: Path, name: str, field: str) -> list[Decimal]:
    return [Decimal(row[field]) for row in report(tmp_path, name)]


def usd(amount: Decimal) -> str:
    return f"{amount:,.2f} USD"


def test_the_budget_forecast_projects_only_the_days_to_come_and_one_day_alerts_nobody(page, ui):
    # January 5th is the only published day: January 1-4 are a gap (not projected), 26 days are to come,
    # and one day of evidence is below the minimum (5 of 7): the forecast is shown and alerts nobody.
    _, tmp_path = ui
    rows = report(tmp_path, "budget_status")
    for row in rows:
        spend = Decimal(row["spend_to_date"])  # one day: the run rate is that day's cost
        assert (row["days_missing"], row["days_to_come"], row["forecast_can_alert"]) == ("4", "26", "false")
        assert Decimal(row["forecast"]) == spend + spend * 26, row["product_id"]
        assert not row["status"].startswith("forecast_")
    products = [row for row in rows if not row["subscription_id"]]

    path = f"/assets/budget_status?view=partitions&partition={DAY}"
    lines = page.open(path, "days_missing", "forecast", "spend_to_date").splitlines()
    assert after(lines, "days_missing") == "4"
    assert after(lines, "forecast") == usd(sum(Decimal(row["forecast"]) for row in products))
    assert after(lines, "spend_to_date") == usd(sum(Decimal(row["spend_to_date"]) for row in products))
    assert "forecast_80pct" not in "\n".join(lines)


def test_the_focus_check_shows_each_kind_of_row_against_its_own_reference(page, ui):
    _, tmp_path = ui
    chargeback = sum(column(tmp_path, "chargeback", "total_cost"))
    focus = sum(column(tmp_path, "focus", "BilledCost"))

    lines = page.open(
        "/assets/focus_export?view=checks&checkDetail=focus_matches_chargeback", "product_rows_cost", "Passed"
    ).splitlines()

    assert focus == chargeback > 0
    assert entry(lines, "product_rows_cost") == entry(lines, "product_rows_reference_cost") == usd(chargeback)
    assert entry(lines, "origin_charges_cost") == usd(focus)
    assert not any(line.startswith("published_total_cost") for line in lines)  # the old sum of every kind


def test_the_reconciliation_says_first_where_publication_is_gated_and_agrees_with_its_asset(page, ui):
    _, tmp_path = ui
    rows = pq.read_table(tmp_path / f"lake/daily_reconciliation/usage_date={DAY}/rows.parquet").to_pylist()
    placed = [row for row in rows if row["backend_id"] != "unknown"]
    metric = sum(row["metric_prompt_tokens"] + row["metric_completion_tokens"] for row in placed)
    logged = sum(row["logged_prompt_tokens"] + row["logged_completion_tokens"] for row in placed)

    check = page.open(
        "/assets/daily_reconciliation?view=checks&checkDetail=tokens_reconcile_with_azure_monitor",
        "publication_gate",
        "unattributed_tokens",
    ).splitlines()
    asset = page.open(
        f"/assets/daily_reconciliation?view=partitions&partition={DAY}", "unattributed_tokens", "per_deployment"
    ).splitlines()

    # Right under Dagster's own "non-blocking" line: where publication is gated instead.
    assert after(check, "This is a non-blocking asset check.").startswith(
        "Gates publication, not as a Dagster blocking check: when it fails with severity error, product_usage_report"
    )
    assert entry(check, "publication_gate").startswith("Gates publication")
    for name, value in (("metric_tokens", metric), ("logged_tokens", logged), ("unattributed_tokens", metric - logged)):
        assert entry(check, name) == after(asset, name) == str(value), name


def test_the_overview_timeline_draws_the_clis_runs_under_their_jobs(page):
    # The daily and monthly jobs have no schedule: their rows exist only for runs that carry an origin.
    text = page.open("/overview/activity/timeline", *JOBS)

    assert "Jobless asset materializations" not in text


ASSET_JOBS = """
{ assetNodes { assetKey { path } jobNames isMaterializable } }
"""


def test_every_asset_lists_a_named_job_first_for_the_materialize_button(ui):
    """The asset page's Materialize button launches the first of an asset's jobs in the order Dagster lists
    them (dagster-webserver 1.13): a named job, for every asset (clicked through in the browser for one
    asset by `test_materialize_on_an_assets_page_launches_its_named_job`)."""
    url, _ = ui
    nodes = [n for n in graphql(url, ASSET_JOBS)["assetNodes"] if n["isMaterializable"]]
    assert nodes and all(n["jobNames"][0] in JOBS for n in nodes), [(n["assetKey"], n["jobNames"]) for n in nodes]
    first = {n["assetKey"]["path"][-1]: n["jobNames"][0] for n in nodes}
    assert (
        first["daily_product_usage"] == "2_daily_rollup_job"
        and first["attributed_requests"] == "1_hourly_attribution_job"
    )


LAUNCHED_RUNS = """
query ($partition: String!) {
  runsOrError(filter: {tags: [{key: "dagster/partition", value: $partition}]}) {
    ... on Runs { results { runId jobName status tags { key value } } }
  }
}
"""


def test_materialize_on_an_assets_page_launches_its_named_job(page, ui):
    """A data engineer's way: the asset's page, Materialize…, the launch dialog with its default selection
    (the latest partition, yesterday: never materialized by the fixture), "Launch 1 run". The run is the
    named job, not `__ASSET_JOB`, and carries the partition. Last in the file: it adds a run to the
    instance the other tests read."""
    url, _ = ui
    day = (datetime.now(UTC) - timedelta(days=1)).date().isoformat()  # the latest daily partition
    title = "Launch runs to materialize daily_product_usage"
    page.open(f"/assets/daily_product_usage?view=partitions&partition={day}", "Materialize", day)
    # The button opens nothing while the page still loads the asset's partitions: click until the dialog
    # shows. A dialog that is slow to draw its title (a loaded CI machine) covers the button, so a click
    # then lands on its backdrop and is refused: the loop never clicks through an open dialog.
    materialize = "//button[starts-with(normalize-space(), 'Materialize')]"  # "Materialize…": a dialog follows

    def dialog_shown(_) -> bool:
        if title in page.text():
            return True
        page.try_click(materialize)  # refused while a dialog, drawn or still drawing, covers the button
        return False

    try:
        WebDriverWait(page.driver, 2 * WAIT_SECONDS, poll_frequency=1).until(dialog_shown)
    except TimeoutException:
        pytest.fail("Materialize… never opened the launch dialog")
    WebDriverWait(page.driver, WAIT_SECONDS, poll_frequency=0.2).until(
        lambda _: "1 partition" in page.text() and "Launch 1 run" in page.text()
    )
    page.click("//button[normalize-space()='Launch 1 run']")

    deadline = time.monotonic() + WAIT_SECONDS
    while not (runs := graphql(url, LAUNCHED_RUNS, {"partition": day})["runsOrError"]["results"]):
        assert time.monotonic() < deadline, "no run of the partition was launched"
        time.sleep(0.5)
    assert [run["jobName"] for run in runs] == ["2_daily_rollup_job"]
    tags = {tag["key"]: tag["value"] for tag in runs[0]["tags"]}
    assert tags["dagster/partition"] == day
