"""Alert ids, webhook payloads (Slack/Teams text and a Teams Adaptive Card), the sent-alert ledger, and the
simulator's surge knob that budgets and anomalies are demonstrated with."""

import json
from dataclasses import asdict
from datetime import UTC, date, datetime

import dagster as dg
import numpy as np
import pytest

from chargeback_pipeline.core.finops.alerts import MAX_PENDING, Alert, Ledger, budget_alert_id, payload
from chargeback_pipeline.definitions import build_resources
from chargeback_pipeline.defs.automation.alerts import alert_sensor
from chargeback_pipeline.defs.resources import AlertWebhookResource, ObjectStoreResource
from chargeback_pipeline.settings import SettingsError, load_settings
from chargeback_pipeline.sources.simulated import SimulationProfile
from chargeback_pipeline.sources.simulated.catalog import Catalog
from chargeback_pipeline.sources.simulated.hours import epoch_us
from chargeback_pipeline.sources.simulated.traffic import generate_hour
from chargeback_pipeline.storage.keys import ALERT_QUEUE

ALERT = Alert("budget:2026-11:chat:over_budget", "Over budget: chat, 2026-11", "chat spent more.", {"budget": "5 USD"})


def test_the_text_payload_is_one_text_field_with_title_facts_and_id():
    assert payload(ALERT) == {
        "text": "*Over budget: chat, 2026-11*\nchat spent more.\nbudget: 5 USD\n"
        "alert id: budget:2026-11:chat:over_budget"
    }


def test_the_adaptive_card_payload_is_what_teams_workflows_accept():
    body = payload(ALERT, "adaptive_card")

    (attachment,) = body["attachments"]
    assert body["type"] == "message"
    assert attachment["contentType"] == "application/vnd.microsoft.card.adaptive"
    card = attachment["content"]
    assert card["type"] == "AdaptiveCard" and card["version"] == "1.4"
    assert card["body"][0]["text"] == "Over budget: chat, 2026-11"
    assert card["body"][2]["facts"][-1] == {"title": "alert id", "value": "budget:2026-11:chat:over_budget"}


def test_the_ledger_queues_each_id_once_and_survives_its_cursor_and_queue_file():
    ledger = Ledger(after={"budget_status": 812, "cost_anomalies": 790})
    assert ledger.queue([ALERT, ALERT]) == 1
    # The cursor is a short marker (how far each asset was read); the queue is a file a reader can open.
    assert ledger.position() == '{"budget_status": 812, "cost_anomalies": 790}'
    assert json.loads(ledger.queue_file()) == {"pending": [asdict(ALERT)], "sent": []}
    assert ledger.queue_file().decode().splitlines()[:3] == ["{", '  "pending": [', "    {"]  # indented
    restored = Ledger.of_stored(ledger.position(), ledger.queue_file())
    assert restored.pending == [ALERT] and restored.after == ledger.after

    restored.mark_sent(ALERT)

    assert restored.queue([ALERT]) == 0 and restored.pending == [] and restored.sent == [ALERT.id]
    assert budget_alert_id(date(2026, 11, 1), "chat", "chat-prod", "forecast_80pct") == (
        "budget:2026-11:chat/chat-prod:forecast_80pct"
    )


def test_a_cursor_that_held_the_whole_ledger_hands_its_queue_to_the_file():
    # As the sensor's cursor was written before the queue had its file: nothing lost, nothing posted twice.
    old = json.dumps(
        {"after": {"budget_status": 7}, "sent": ["budget:2026-11:a:over_budget"], "pending": [asdict(ALERT)]}
    )

    ledger = Ledger.of_stored(old, None)

    assert (ledger.after, ledger.sent, ledger.pending) == (
        {"budget_status": 7},
        ["budget:2026-11:a:over_budget"],
        [ALERT],
    )
    assert ledger.position() == '{"budget_status": 7}'
    assert Ledger.of_stored(ledger.position(), ledger.queue_file()) == ledger


def test_the_ledger_forgets_ids_of_months_that_cannot_recur_and_caps_its_queue():
    ledger = Ledger(sent=["budget:2026-07:a:over_budget", "budget:2026-08:a:over_budget", "anomaly:2026-11-02:a:m"])
    ledger.queue([Alert(f"anomaly:2026-11-{n % 28 + 1:02d}:p{n}:m", "t", "x") for n in range(MAX_PENDING + 2)])

    dropped = ledger.prune(date(2026, 11, 30))

    assert ledger.sent == ["budget:2026-08:a:over_budget", "anomaly:2026-11-02:a:m"]
    assert [a.id for a in dropped] == ["anomaly:2026-11-01:p0:m", "anomaly:2026-11-02:p1:m"]
    assert len(ledger.pending) == MAX_PENDING


def hour_tokens(profile: SimulationProfile, hour: datetime) -> dict[str, np.ndarray]:
    catalog = Catalog(profile)
    requests = generate_hour(profile, catalog, epoch_us(hour))
    product = catalog.subscription_product[requests.subscription]
    return {"prompt": requests.prompt_tokens, "completion": requests.completion_tokens, "product": product}


def test_the_surge_multiplies_one_products_tokens_on_its_days_and_changes_nothing_else():
    surged = SimulationProfile(surge_product="hr-assistant", surge_factor=4.0, surge_days=("2026-11-19",))
    step = SimulationProfile(surge_product="hr-assistant", surge_factor=2.0, surge_days=("2026-11-10..",))
    on, off = datetime(2026, 11, 19, 15, tzinfo=UTC), datetime(2026, 11, 18, 15, tzinfo=UTC)
    plain, spiked = hour_tokens(SimulationProfile(), on), hour_tokens(surged, on)
    hr = plain["product"] == SimulationProfile().product_ids.index("hr-assistant")

    assert (plain["product"] == spiked["product"]).all()  # the same requests: no random draw changed
    assert (spiked["prompt"][hr] == plain["prompt"][hr] * 4).all() and hr.sum() > 10
    assert (spiked["prompt"][~hr] == plain["prompt"][~hr]).all()
    assert (spiked["completion"][~hr] == plain["completion"][~hr]).all()
    assert (hour_tokens(surged, off)["prompt"] == hour_tokens(SimulationProfile(), off)["prompt"]).all()
    stepped, before = hour_tokens(step, off), hour_tokens(SimulationProfile(), off)
    hr_off = before["product"] == SimulationProfile().product_ids.index("hr-assistant")
    assert (stepped["prompt"][hr_off] == before["prompt"][hr_off] * 2).all()


@pytest.mark.parametrize(
    "name, value, message",
    [
        ("CHARGEBACK_SIMULATED_SURGE_PRODUCT", "hr-asistant", "CHARGEBACK_SIMULATED_SURGE_PRODUCT: must be one of"),
        ("CHARGEBACK_SIMULATED_SURGE_DAYS", "2026-11-19,yesterday", "CHARGEBACK_SIMULATED_SURGE_DAYS: 'yesterday' is"),
        ("CHARGEBACK_SIMULATED_SURGE_FACTOR", "-1", "CHARGEBACK_SIMULATED_SURGE_FACTOR: Input should be greater"),
    ],
)
def test_bad_surge_settings_name_their_variable(monkeypatch, name, value, message):
    monkeypatch.setenv(name, value)

    with pytest.raises(SettingsError, match=message):
        load_settings()


def test_the_webhook_url_reaches_its_resource_as_an_env_var_only(monkeypatch):
    monkeypatch.setenv("CHARGEBACK_ALERT_WEBHOOK_URL", "https://hooks.slack.com/services/T0/B0/s3cr3t")
    settings = load_settings()

    resource = build_resources(settings)["alert_webhook"]

    assert isinstance(resource.url, dg.EnvVar) and resource.url == "CHARGEBACK_ALERT_WEBHOOK_URL"
    assert "s3cr3t" not in repr(settings) and "s3cr3t" not in repr(resource)
    assert "s3cr3t" in resource.process_config_and_initialize().url  # resolved only when a run uses it


def test_the_sensor_does_not_queue_a_forecast_alert_recorded_without_its_evidence(tmp_path):
    # A materialization as written before the minimum existed (the demo's November forecast from one day)
    # and one with too little evidence: the sensor reads both and queues neither; the over-budget one it does.
    old = Alert("budget:2026-11:bot:forecast_80pct", "Budget forecast at 80 %: bot, 2026-11", "bot is forecast.")
    weak = Alert("budget:2026-12:bot:forecast_80pct", "Budget forecast at 80 %", "bot is forecast.", {}, 1, 5)
    over = Alert("budget:2026-12:bot:over_budget", "Over budget: bot, 2026-12", "bot spent more.")
    with dg.instance_for_test() as instance:
        instance.report_runless_asset_event(
            dg.AssetMaterialization(
                "budget_status",
                partition="2026-12-01",
                metadata={"alerts": dg.MetadataValue.json([asdict(a) for a in (old, weak, over)])},
            )
        )
        resources = {"alert_webhook": AlertWebhookResource(), "reports": ObjectStoreResource(local_dir=str(tmp_path))}
        context = dg.build_sensor_context(instance=instance, resources=resources)
        result = alert_sensor(max_age_days=None)(context)

        assert result.skip_message.startswith("1 new alert(s)")
        assert f"1 alert(s) waiting in {ALERT_QUEUE}" in result.skip_message
        queue = (tmp_path / ALERT_QUEUE).read_bytes()
        assert [alert.id for alert in Ledger.of_stored(context.cursor, queue).pending] == [over.id]
