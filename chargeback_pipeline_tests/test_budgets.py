"""Budgets: the file's validation at load, and each day's spend to date, forecast and crossings, in exact
numbers."""

from dataclasses import replace
from datetime import date, timedelta
from decimal import Decimal

import dagster as dg
import pytest

from chargeback_pipeline.core.finops import alerts
from chargeback_pipeline.core.finops import budgets as core
from chargeback_pipeline.core.finops.budgets import load_budgets, parse_budgets
from chargeback_pipeline.defs.budgets import checks
from chargeback_pipeline.settings import SettingsError, load_settings
from chargeback_pipeline_tests.conftest import REPO

LIMITS = core.thresholds(80, 100)
ASSET = dg.AssetKey("budget_status")


def budgets(amount: str = "5000", product: str = "chat") -> core.Budgets:
    return parse_budgets({"products": {product: {"monthly": [{"effective_from": date(2026, 1, 1), "amount": amount}]}}})


def costs(days: dict[date, str], product: str = "chat") -> dict:
    return {day: {(product, None): Decimal(amount)} for day, amount in days.items()}


def test_forecast_is_spend_to_date_plus_the_last_7_published_days_mean_times_the_days_to_come():
    # November: days 1-3 and 5-7 cost 100, day 4 is not published, days 8-10 cost 200.
    history = {date(2026, 11, n): "100" for n in (1, 2, 3, 5, 6, 7)} | {date(2026, 11, n): "200" for n in (8, 9, 10)}

    (line,) = core.budget_lines(date(2026, 11, 10), costs(history), budgets("4500"), LIMITS, minor_unit=2)

    assert line.spend_to_date == Decimal(1200)
    assert line.days_published == 9
    assert line.run_rate_days == 6  # Nov 4..10, day 4 missing
    assert line.run_rate == Decimal("150.00")  # (3 x 100 + 3 x 200) / 6
    # 1,200 + 150 x (30 - 10) days after the 10th: the missing day 4 is a gap, not projected.
    assert (line.days_missing, line.days_to_come) == (1, 20)
    assert line.forecast == Decimal("4200.00")
    assert line.forecast_percent == 93.33
    assert line.actual_percent == 26.67
    assert line.crossed == ("forecast_80pct",)
    assert line.status == "forecast_80pct"


def test_run_rate_reaches_back_into_the_previous_month_on_its_first_days():
    history = {date(2026, 11, 30) - timedelta(days=n): "70" for n in range(5)} | {date(2026, 12, 1): "140"}

    (line,) = core.budget_lines(date(2026, 12, 1), costs(history), budgets("3000"), LIMITS, 2, forecast_min_days=5)

    assert line.spend_to_date == Decimal(140)
    assert line.run_rate_days == 6  # Nov 26..30 and Dec 1
    assert line.run_rate == Decimal("81.67")  # (5 x 70 + 140) / 6, shown rounded
    assert line.forecast == Decimal("2590.00")  # 140 + 490 / 6 x 30 days to come, rounded once
    assert line.crossed == ("forecast_80pct",)


def _calendar_forecast(day: date, history: dict[date, str]) -> tuple[Decimal, int, int]:
    """The forecast recomputed from the calendar alone: the month's published spend, the mean of the
    published days among the 7 ending on `day`, the days after `day`, and the past days never published."""
    days_in_month = (day.replace(day=28) + timedelta(days=4)).replace(day=1) - timedelta(days=1)
    past = [day.replace(day=n) for n in range(1, day.day + 1)]
    spend = sum((Decimal(history[d]) for d in past if d in history), Decimal(0))
    window = [Decimal(history[d]) for d in (day - timedelta(days=n) for n in range(7)) if d in history]
    to_come = days_in_month.day - day.day
    return (
        (spend + sum(window) / len(window) * to_come).quantize(Decimal("0.01")),
        to_come,
        len(past) - len([d for d in past if d in history]),
    )


def test_month_end_with_one_published_day_forecasts_no_past_day_and_alerts_on_nothing():
    # The demo's case: November's last day is its only published day; Nov 1..29 were never processed.
    history = {date(2026, 11, 30): "662"}

    (line,) = core.budget_lines(date(2026, 11, 30), costs(history), budgets("20000"), LIMITS, 2, forecast_min_days=5)

    forecast, to_come, missing = _calendar_forecast(date(2026, 11, 30), history)
    assert (line.forecast, line.days_to_come, line.days_missing) == (forecast, to_come, missing) == (
        Decimal("662.00"), 0, 29)  # fmt: skip
    assert line.forecast_percent == 3.31 and not line.forecast_can_alert and line.crossed == ()


def test_a_forecast_needs_its_minimum_of_published_days_before_it_can_alert():
    # Nov 30 and Dec 1 published: a high run rate over 2 days is shown but alerts nobody; from the 5th
    # published day of the window on, the same forecast alerts.
    history = {date(2026, 11, 30): "900", date(2026, 12, 1): "900"}
    few = core.budget_lines(date(2026, 12, 1), costs(history), budgets("20000"), LIMITS, 2, forecast_min_days=5)[0]
    history |= {date(2026, 12, n): "900" for n in (2, 3, 4)}
    enough = core.budget_lines(date(2026, 12, 4), costs(history), budgets("20000"), LIMITS, 2, forecast_min_days=5)[0]

    assert few.forecast == _calendar_forecast(date(2026, 12, 1), history)[0] == Decimal("27900.00")
    assert few.forecast_percent > 80 and few.run_rate_days == 2 and not few.forecast_can_alert
    assert few.crossed == () and alerts.budget_alerts([few], "USD", 2) == []
    assert enough.run_rate_days == 5 and enough.forecast_can_alert and enough.crossed == ("forecast_80pct",)
    (alert,) = alerts.budget_alerts([enough], "USD", 2)
    assert alert.has_evidence and (alert.evidence_days, alert.evidence_needed) == (5, 5)


def test_the_ledger_never_queues_a_forecast_alert_without_its_evidence():
    history = {date(2026, 12, n): "900" for n in range(1, 6)}
    (line,) = core.budget_lines(date(2026, 12, 5), costs(history), budgets("20000"), LIMITS, 2, forecast_min_days=5)
    (alert,) = alerts.budget_alerts([line], "USD", 2)
    weak = replace(alert, evidence_days=2)
    written_before_the_rule = replace(alert, evidence_days=None, evidence_needed=None)
    ledger = alerts.Ledger()

    assert ledger.queue([weak, written_before_the_rule]) == 0
    assert ledger.queue([alert]) == 1


def test_spend_above_the_budget_crosses_every_threshold_and_fails_with_severity_error():
    history = {date(2026, 11, n): "1000" for n in range(1, 7)}

    (line,) = core.budget_lines(date(2026, 11, 6), costs(history), budgets("5000"), LIMITS, minor_unit=2)
    result = checks.within_budget(ASSET, [line], "USD", "80/100")

    assert line.crossed == ("forecast_80pct", "actual_100pct", "over_budget")
    assert line.over_budget and line.actual_percent == 120.0
    assert not result.passed and result.severity == dg.AssetCheckSeverity.ERROR
    assert result.metadata["budget_days_over"].value == 1
    assert "chat: spent 6,000.00 USD (120 %) of 5,000.00 USD" in result.description


def test_exactly_the_budget_warns_but_is_not_over_it():
    history = {date(2026, 11, n): "1000" for n in range(1, 6)}

    (line,) = core.budget_lines(date(2026, 11, 5), costs(history), budgets("5000"), LIMITS, minor_unit=2)
    result = checks.within_budget(ASSET, [line], "USD", "80/100")

    assert line.crossed == ("forecast_80pct", "actual_100pct")
    assert not result.passed and result.severity == dg.AssetCheckSeverity.WARN


def test_a_quiet_product_under_budget_passes():
    history = {date(2026, 11, n): "10" for n in range(1, 11)}

    (line,) = core.budget_lines(date(2026, 11, 10), costs(history), budgets("5000"), LIMITS, minor_unit=2)

    assert line.crossed == () and line.forecast == Decimal("300.00")
    assert checks.within_budget(ASSET, [line], "USD", "80/100").passed


def test_subscription_budgets_and_budget_changes_follow_their_dates():
    loaded = load_budgets(REPO / "budgets.example.yaml")

    assert loaded.in_force(date(2026, 5, 31))[("hr-assistant", None)] == Decimal(9000)
    assert loaded.in_force(date(2026, 6, 1))[("hr-assistant", None)] == Decimal(10000)
    assert loaded.in_force(date(2026, 6, 1))[("customer-support-bot", "customer-support-bot-prod")] == Decimal(18000)
    lines = [
        {"product_id": "chat", "subscription_id": "chat-prod", "total_cost": Decimal("1.50")},
        {"product_id": "chat", "subscription_id": "abc", "total_cost": Decimal("2.25")},
        {"product_id": "unattributed", "subscription_id": None, "total_cost": Decimal("4")},
    ]
    assert core.scope_costs(lines) == {
        ("chat", None): Decimal("3.75"),
        ("chat", "chat-prod"): Decimal("1.50"),
        ("chat", "abc"): Decimal("2.25"),
        ("unattributed", None): Decimal(4),
    }


def test_a_budget_for_a_product_no_chargeback_names_is_reported_by_its_setting():
    loaded = load_budgets(REPO / "budgets.example.yaml")
    seen = {("customer-support-bot", None), ("customer-support-bot", "customer-support-bot-prod"),
            ("contract-search", None), ("hr-assistant", None)}  # fmt: skip

    unknown = core.unknown_scopes(loaded, date(2026, 11, 1), seen)
    result = checks.names_known_products(ASSET, unknown, ["contract-search"])

    assert unknown == ["budgets.products.finance-analytics.monthly"]
    assert not result.passed and result.severity == dg.AssetCheckSeverity.WARN
    assert "budgets.products.finance-analytics.monthly" in result.description


@pytest.mark.parametrize(
    "text, message",
    [
        ("products:\n  chat:\n    monthly:\n      - effective_from: 2026-01-01\n        amount: -5\n",
         "budgets.products.chat.monthly[0].amount: Input should be greater than 0"),
        ("products:\n  chat:\n    monthly:\n      - effective_from: 2026-01-15\n        amount: 5\n",
         "budgets.products.chat.monthly[0].effective_from: 2026-01-15 is not the first day of a month"),
        ("products:\n  chat:\n    monthly:\n      - effective_from: 2026-03-01\n        amount: 5\n"
         "      - effective_from: 2026-02-01\n        amount: 6\n",
         "budgets.products.chat.monthly: effective_from 2026-02-01 must be after 2026-03-01"),
        ("products:\n  chat:\n    montly: []\n", "budgets.products.chat.montly: not a known setting"),
        ("products:\n  chat: {}\n  chat: {}\n", "duplicate key 'chat' at line 3"),
        ("products: {}\n", "budgets.products: Dictionary should have at least 1 item"),
    ],
)  # fmt: skip
def test_a_bad_budgets_file_fails_at_load_naming_the_variable_and_the_setting(tmp_path, monkeypatch, text, message):
    path = tmp_path / "budgets.yaml"
    path.write_text(text)
    monkeypatch.setenv("CHARGEBACK_BUDGETS_FILE", str(path))

    with pytest.raises(SettingsError) as raised:
        load_settings()

    assert f"CHARGEBACK_BUDGETS_FILE={path}: invalid budgets file" in str(raised.value)
    assert message in str(raised.value)


def test_budgets_in_another_currency_than_the_prices_fail_at_load(tmp_path, monkeypatch):
    path = tmp_path / "budgets.yaml"
    path.write_text(
        "currency: EUR\nproducts:\n  chat:\n    monthly:\n      - effective_from: 2026-01-01\n        amount: 5\n"
    )
    monkeypatch.setenv("CHARGEBACK_BUDGETS_FILE", str(path))

    with pytest.raises(SettingsError, match=r"budgets.currency EUR differs from the pricing file's currency USD"):
        load_settings()


def test_missing_budgets_file_names_the_variable(tmp_path, monkeypatch):
    monkeypatch.setenv("CHARGEBACK_BUDGETS_FILE", str(tmp_path / "nope.yaml"))

    with pytest.raises(SettingsError, match=r"CHARGEBACK_BUDGETS_FILE=.*nope.yaml: cannot read budgets file"):
        load_settings()


def test_the_example_budgets_file_loads_with_its_settings(monkeypatch):
    monkeypatch.setenv("CHARGEBACK_BUDGETS_FILE", str(REPO / "budgets.example.yaml"))
    monkeypatch.setenv("CHARGEBACK_BUDGET_FORECAST_WARN_PERCENT", "90")

    settings = load_settings()

    assert settings.budget_forecast_warn_percent == 90
    assert settings._budgets is not None and "finance-analytics" in settings._budgets.products


@pytest.mark.parametrize(
    "url",
    ["http://hooks.example.com/services/T000/B000/s3cr3tToken", "ftp://hooks.example.com/s3cr3tToken"],
)
def test_a_webhook_url_that_is_not_https_outside_loopback_fails_without_showing_it(monkeypatch, url):
    monkeypatch.setenv("CHARGEBACK_ALERT_WEBHOOK_URL", url)

    with pytest.raises(SettingsError) as raised:
        load_settings()

    assert "CHARGEBACK_ALERT_WEBHOOK_URL: must be an https:// URL" in str(raised.value)
    assert "s3cr3tToken" not in str(raised.value)


@pytest.mark.parametrize("url", ["https://hooks.slack.com/services/T/B/x", "http://127.0.0.1:8123/hook"])
def test_https_and_loopback_webhook_urls_load(monkeypatch, url):
    monkeypatch.setenv("CHARGEBACK_ALERT_WEBHOOK_URL", url)

    settings = load_settings()

    assert settings.alert_webhook_url_set and url not in repr(settings)


def test_bad_finops_thresholds_name_their_variable(monkeypatch):
    monkeypatch.setenv("CHARGEBACK_ANOMALY_MIN_HISTORY_DAYS", "40")

    with pytest.raises(SettingsError, match="CHARGEBACK_ANOMALY_MIN_HISTORY_DAYS must not exceed"):
        load_settings()
