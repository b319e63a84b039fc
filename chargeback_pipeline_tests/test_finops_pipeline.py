"""Budgets, anomalies and their alerts end to end: a week of simulated days with an injected spike (and, re-run,
a step change), the published files read back like a spreadsheet would, the checks, the command's summary,
and the alert sensor posting to a local HTTP receiver that is down, refuses, then takes the alerts."""

import csv
import json
import shutil
import socket
import threading
import time
from datetime import date
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import dagster as dg
import pytest
from click.testing import CliRunner

from chargeback_pipeline import settings
from chargeback_pipeline.cli import check_summary
from chargeback_pipeline.cli.backfill import backfill
from chargeback_pipeline.cli.commands import main
from chargeback_pipeline.core.finops.alerts import Ledger
from chargeback_pipeline.defs.automation.alerts import ALERT_ASSETS, alert_sensor
from chargeback_pipeline.defs.resources import (
    AlertWebhookResource,
    FinOpsPolicyResource,
    ObjectStoreResource,
    PricingResource,
)
from chargeback_pipeline.sources.simulated.resource import SimulatedSourceResource
from chargeback_pipeline.storage.keys import ALERT_QUEUE
from chargeback_pipeline_tests.conftest import ASSETS, REPO, local_resources, pipeline

FIRST, SPIKE = date(2026, 11, 13), date(2026, 11, 19)
RATE = 200
BUDGETS = """
products:
  customer-support-bot:
    monthly: [{effective_from: 2026-01-01, amount: 13000}]
  finance-analytics:
    monthly: [{effective_from: 2026-01-01, amount: 60}]
  ghost-product:
    monthly: [{effective_from: 2026-01-01, amount: 100}]
"""
TOKEN = "s3cr3t-webhook-token"


def resources(folder, surge_days: list[str]) -> dict:
    (folder / "budgets.yaml").write_text(BUDGETS)
    source = SimulatedSourceResource(
        simulated_requests_per_hour=RATE,
        simulated_surge_product="hr-assistant",
        simulated_surge_factor=4.0,
        simulated_surge_days=surge_days,
    )
    # Three days of history suffice to judge at this volume; the default (7) is for production.
    finops = FinOpsPolicyResource(budgets_file=str(folder / "budgets.yaml"), anomaly_min_history_days=3)
    # The budgets above are sized for 100 / 50 PTU (the example file's counts when they were written).
    prices = (REPO / "pricing.example.yaml").read_text(encoding="utf-8")
    for deployed, sized in (("ptu_count: 65", "ptu_count: 100"), ("ptu_count: 60", "ptu_count: 50")):
        assert deployed in prices, deployed  # the example file changed: resize these budgets' counts
        prices = prices.replace(deployed, sized)
    (folder / "pricing.yaml").write_text(prices, encoding="utf-8")
    pricing = PricingResource(path=str(folder / "pricing.yaml"))
    return local_resources(folder, source) | {"finops": finops, "pricing": pricing}


@pytest.fixture(scope="module")
def backfilled(tmp_path_factory):
    folder = tmp_path_factory.mktemp("finops")
    definitions = pipeline(resources(folder, [SPIKE.isoformat()]))
    with dg.instance_for_test() as instance:
        chunks = backfill(FIRST, SPIKE, definitions, instance, days_per_run=7, log_level="ERROR")
        yield folder, chunks, instance, definitions


def read_csv(folder, day: date, name: str) -> list[dict]:
    with open(folder / "reports" / f"daily/usage_date={day}/{name}.csv", newline="") as file:
        return list(csv.DictReader(file))


def anomalous(folder, day: date) -> list[tuple[str, str]]:
    return [(row["product_id"], row["model_name"]) for row in read_csv(folder, day, "cost_anomalies")
            if row["is_anomaly"] == "true"]  # fmt: skip


def test_the_injected_spike_is_found_and_the_quiet_days_raise_nothing(backfilled):
    folder = backfilled[0]
    judged_quiet = [date(2026, 11, d) for d in range(16, 19)]  # 3+ days of history, no surge

    found = anomalous(folder, SPIKE)

    assert ("hr-assistant", "gpt-4.1") in found
    assert {product for product, _ in found} == {"hr-assistant"}
    assert {day: anomalous(folder, day) for day in judged_quiet} == {day: [] for day in judged_quiet}
    row = next(r for r in read_csv(folder, SPIKE, "cost_anomalies") if r["product_id"] == "hr-assistant"
               and r["model_name"] == "gpt-4.1")  # fmt: skip
    assert float(row["cost_score"]) >= 3.5 and float(row["tokens_score"]) >= 3.5
    assert float(row["cost"]) - float(row["baseline_median_cost"]) == pytest.approx(float(row["cost_change"]), abs=0.01)
    assert int(row["history_days"]) == 6
    assert {r["reason"] for r in read_csv(folder, FIRST, "cost_anomalies")} == {"insufficient history (0 days)"}


def test_budget_status_shows_the_overrun_the_forecast_warning_and_the_unknown_product(backfilled):
    folder = backfilled[0]

    rows = {row["product_id"]: row for row in read_csv(folder, SPIKE, "budget_status")}

    assert set(rows) == {"customer-support-bot", "finance-analytics", "ghost-product"}
    over = rows["finance-analytics"]
    assert over["status"] == "over_budget" and float(over["spend_to_date"]) > 60
    assert over["days_published"] == "7" and over["days_in_month"] == "30" and over["run_rate_days"] == "7"
    spend, rate = float(over["spend_to_date"]), float(over["run_rate_per_day"])
    # Nov 1..12 were never processed: a gap of 12 days, not projected; only the 11 days after the 19th are.
    assert over["days_missing"] == "12" and over["days_to_come"] == "11" and over["forecast_can_alert"] == "true"
    assert float(over["forecast"]) == pytest.approx(spend + rate * 11, abs=0.06)  # the rate is shown rounded
    bot = rows["customer-support-bot"]
    assert bot["status"] == "forecast_80pct" and 80 <= float(bot["forecast_percent"]) < 100
    assert rows["ghost-product"]["spend_to_date"] == "0.00" and rows["ghost-product"]["status"] == "ok"


def test_budget_and_anomaly_checks_are_alerts_that_do_not_fail_the_command(backfilled):
    _, chunks, _, _ = backfilled
    checks = [pair for chunk in chunks for pair in chunk.checks_with_partitions()]
    by_name = {e.check_name: e for e, _ in checks}

    assert not by_name["within_budget"].passed and by_name["within_budget"].severity == dg.AssetCheckSeverity.ERROR
    assert not by_name["no_cost_anomaly"].passed and by_name["no_cost_anomaly"].severity == dg.AssetCheckSeverity.WARN
    assert not by_name["budgets_name_known_products"].passed
    assert "budgets.products.ghost-product.monthly" in by_name["budgets_name_known_products"].description
    assert check_summary.command_failures(checks) == []
    paragraphs = check_summary.alerts(checks)
    assert paragraphs[0].startswith("OVER BUDGET: budget_status:within_budget")
    assert any(p.startswith("ALERT: cost_anomalies:no_cost_anomaly") and "hr-assistant" in p for p in paragraphs)
    assert not any("within_budget" in p for p in check_summary.summaries(checks))


def test_each_day_plots_its_own_numbers(backfilled):
    _, _, instance, _ = backfilled
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey("budget_status"), asset_partitions=[SPIKE.isoformat()]), limit=1
    ).records
    metadata = records[0].asset_materialization.metadata

    assert metadata["budgets_over"].value == 1
    assert 80 <= metadata["forecast_percent/customer-support-bot"].value < 100
    assert metadata["actual_percent/finance-analytics"].value > 100
    ids = [alert["id"] for alert in metadata["alerts"].value]
    assert "budget:2026-11:finance-analytics:over_budget" in ids


def test_a_step_change_is_found_from_its_first_day(backfilled, tmp_path):
    folder = backfilled[0]
    # the lake and the days published before the step: anomalies judge a day against the days published
    # before it (the step's days are published anew, not over the fixture's quieter ones)
    step = date(2026, 11, 18)
    shutil.copytree(folder / "lake", tmp_path / "lake")
    shutil.copytree(folder / "reports" / "daily", tmp_path / "reports" / "daily",
                    ignore=lambda _, names: [n for n in names if n >= f"usage_date={step}"])  # fmt: skip
    with dg.instance_for_test() as instance:
        backfill(step, SPIKE, pipeline(resources(tmp_path, [f"{step}.."])), instance, days_per_run=2, log_level="ERROR")

    assert ("hr-assistant", "gpt-4.1") in anomalous(tmp_path, step)
    assert ("hr-assistant", "gpt-4.1") in anomalous(tmp_path, SPIKE)
    assert {product for day in (step, SPIKE) for product, _ in anomalous(tmp_path, day)} == {"hr-assistant"}


class Receiver:
    """A local incoming webhook: records each JSON body; refuses the next `refuse` posts with a 503."""

    def __init__(self, port: int):
        self.bodies, self.refused, self.refuse = [], 0, 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if receiver.refuse:
                    receiver.refuse -= 1
                    receiver.refused += 1
                    self.send_response(503)
                else:
                    receiver.bodies.append(body)
                    self.send_response(200)
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def ids(self) -> list[str]:
        return [body["text"].rsplit("alert id: ", 1)[1] for body in self.bodies]

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def queue_in(folder) -> dict:
    """The sensor's `reports` store: the folder its queue file is written in (each test its own)."""
    return {"reports": ObjectStoreResource(local_dir=str(folder))}


def stored(cursor: str | None, folder) -> Ledger:
    """The ledger as the sensor left it: its cursor and the queue file it wrote."""
    queue = folder / ALERT_QUEUE
    return Ledger.of_stored(cursor, queue.read_bytes() if queue.exists() else None)


def tick(instance, cursor: str | None, url: str, folder):
    webhook = AlertWebhookResource(url=url, backoff_seconds=0.01, timeout_seconds=5)
    resources = {"alert_webhook": webhook, **queue_in(folder)}
    context = dg.build_sensor_context(instance=instance, cursor=cursor, resources=resources)
    result = alert_sensor(max_age_days=None)(context)  # a new sensor each tick: as after a restart
    return result.skip_message, context.cursor


def test_alerts_reach_the_webhook_once_per_crossing_through_an_outage(backfilled, tmp_path):
    _, _, instance, definitions = backfilled
    expected = {
        alert["id"]
        for key in ALERT_ASSETS
        for record in instance.fetch_materializations(key, limit=1000).records
        if "alerts" in record.asset_materialization.metadata
        for alert in record.asset_materialization.metadata["alerts"].value
    }
    assert {"budget:2026-11:finance-analytics:over_budget", "anomaly:2026-11-19:hr-assistant:gpt-4.1"} <= expected
    port = free_port()
    url = f"http://127.0.0.1:{port}/hooks/{TOKEN}"

    # Down: nothing listens. Every alert is queued, none is lost, the message does not show the URL.
    message, cursor = tick(instance, None, url, tmp_path)
    assert f"{len(expected)} new alert(s), 0 posted" in message and "ConnectionError" in message
    assert TOKEN not in message and TOKEN not in cursor
    assert {alert.id for alert in stored(cursor, tmp_path).pending} == expected
    # The queue is a file a reader opens (each waiting alert in full); the cursor only says how far it read.
    queue = json.loads((tmp_path / ALERT_QUEUE).read_text(encoding="utf-8"))
    assert {alert["id"] for alert in queue["pending"]} == expected and queue["sent"] == []
    assert all(alert["title"] and alert["text"] for alert in queue["pending"])
    position = {
        key.to_user_string(): instance.fetch_materializations(key, limit=1).records[0].storage_id
        for key in ALERT_ASSETS
    }
    assert json.loads(cursor) == position

    receiver = Receiver(port)
    try:
        receiver.refuse = 1  # up, but the first post gets a 503: retried within the post
        for _ in range(10):
            message, cursor = tick(instance, cursor, url, tmp_path)
            if not stored(cursor, tmp_path).pending:
                break
        assert receiver.refused == 1
        assert sorted(receiver.ids()) == sorted(expected)  # each exactly once
        assert "*Over budget: finance-analytics, 2026-11*" in next(
            body["text"] for body in receiver.bodies if "finance-analytics:over_budget" in body["text"]
        )

        # Later ticks, and the same days materialized again (same crossings), post nothing more.
        message, cursor = tick(instance, cursor, url, tmp_path)
        assert message.startswith("0 new alert(s), 0 posted")
        dg.materialize(
            [a for a in ASSETS if set(a.keys) & set(ALERT_ASSETS)],
            partition_key=SPIKE.isoformat(),
            resources=definitions.resources,
            instance=instance,
        )
        message, cursor = tick(instance, cursor, url, tmp_path)
        assert message.startswith("0 new alert(s), 0 posted")
        assert sorted(receiver.ids()) == sorted(expected)
    finally:
        receiver.stop()


def test_a_refused_alert_stays_queued_and_the_error_hides_the_url(backfilled, tmp_path):
    _, _, instance, _ = backfilled
    port = free_port()
    receiver = Receiver(port)
    try:
        receiver.refuse = 100
        message, cursor = tick(instance, None, f"http://127.0.0.1:{port}/hooks/{TOKEN}", tmp_path)
    finally:
        receiver.stop()

    assert receiver.refused == 3  # one alert, three attempts, then the tick stops posting
    assert "HTTP 503" in message and TOKEN not in message
    assert stored(cursor, tmp_path).sent == [] and len(stored(cursor, tmp_path).pending) > 0


@pytest.fixture
def environment(tmp_path, monkeypatch):
    for name, value in {
        "CHARGEBACK_LAKE_DIR": tmp_path / "lake",
        "CHARGEBACK_OUTPUT_DIR": tmp_path / "reports",
        "DAGSTER_HOME": tmp_path / "dagster_home",
        "CHARGEBACK_SIMULATED_REQUESTS_PER_HOUR": 50,
        "CHARGEBACK_GATEWAY_COMPLETENESS_MIN_REQUESTS": 100,
        "CHARGEBACK_RECONCILIATION_MIN_TOKENS": 1_000_000_000,
        "CHARGEBACK_BUDGETS_FILE": tmp_path / "budgets.yaml",
    }.items():
        monkeypatch.setenv(name, str(value))
    (tmp_path / "budgets.yaml").write_text(
        "products:\n  customer-support-bot:\n    monthly: [{effective_from: 2026-01-01, amount: 10}]\n"
    )
    settings.current_settings.cache_clear()
    yield monkeypatch
    settings.current_settings.cache_clear()


def test_cli_backfill_prints_an_overrun_as_an_alert_and_exits_0(tmp_path, environment):
    result = CliRunner().invoke(main, ["backfill", "2026-11-19"])

    assert result.exit_code == 0, result.output
    assert "alerts (budgets and cost anomalies; they do not change the exit code):" in result.output
    assert "OVER BUDGET: budget_status:within_budget for partitions 2026-11-19" in result.output
    assert "customer-support-bot" in result.output
    assert str(tmp_path / "reports" / "daily/usage_date=2026-11-19/budget_status.csv") in result.output


def test_an_unanswered_alert_is_recorded_as_taken_and_each_post_carries_its_idempotency_key(backfilled, tmp_path):
    """Issue 24, case 10: a read timeout means the hook may have the alert: it is never posted again."""
    _, _, instance, _ = backfilled
    received: list[tuple[str, str]] = []  # (Idempotency-Key header, alert id in the body)
    slow = {"first": True}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            received.append((self.headers.get("Idempotency-Key"), body["text"].rsplit("alert id: ", 1)[1]))
            if slow.pop("first", False):
                time.sleep(1.5)  # taken, but answered after the client's timeout
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/hooks/{TOKEN}"
    try:
        webhook = AlertWebhookResource(url=url, backoff_seconds=0.01, timeout_seconds=0.5)
        cursor = None
        for _ in range(10):
            resources = {"alert_webhook": webhook, **queue_in(tmp_path)}
            context = dg.build_sensor_context(instance=instance, cursor=cursor, resources=resources)
            alert_sensor(max_age_days=None)(context)
            cursor = context.cursor
            if not stored(cursor, tmp_path).pending:
                break
    finally:
        server.shutdown()
        server.server_close()

    ids = [alert_id for _, alert_id in received]
    assert len(ids) == len(set(ids)) > 1  # the unanswered one too: each posted exactly once
    assert all(key == alert_id for key, alert_id in received)
    assert sorted(stored(cursor, tmp_path).sent) == sorted(ids)
