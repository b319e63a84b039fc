"""The `budget_and_anomaly_alerts` sensor: posts each budget crossing and cost anomaly once to the alert webhook.

Every materialization of `budget_status` and `cost_anomalies` carries its day's alerts (metadata `alerts`,
each with a stable id: one per product, threshold and month; one per product, model and day). Each tick the
sensor reads the materializations after the ones it last read, queues the alerts it never sent nor queued
(`core.finops.alerts.Ledger`), and posts the queue oldest first (AlertWebhookResource: bounded retries).
An alert the webhook refuses (no connection, 429, 5xx, any answer but 2xx) stays queued and is posted on a
later tick: never lost. One whose request was sent but not answered (a read timeout) is recorded as taken:
never posted twice; each request carries `Idempotency-Key: <alert id>` for receivers that drop repeats.
The queue is a file a reader can open beside the reports, `alerts/alert_queue.json` (each alert still to
send in full, then the ids sent); the sensor's cursor is only how far it read each asset
(`{"budget_status": 812, "cost_anomalies": 790}`), stored in the Dagster instance. Both survive restarts.
The queue is written before the cursor moves: a tick that stops between the two reads the same
materializations again and queues nothing twice. A restart between a post and the end of its tick would
post that one alert again: the queue is saved once per tick, so a tick posts at most MAX_POSTS_PER_TICK.

Without CHARGEBACK_ALERT_WEBHOOK_URL the alerts wait in the queue (the tick says how many, and where).
"""

import time
from datetime import UTC, date, datetime, timedelta

import dagster as dg

from chargeback_pipeline.core.finops.alerts import Alert, Ledger, payload
from chargeback_pipeline.defs.anomalies.cost_anomalies import COST_ANOMALIES_KEY
from chargeback_pipeline.defs.budgets.budget_status import BUDGET_STATUS_KEY
from chargeback_pipeline.defs.resources import (
    AlertWebhookResource,
    ObjectStoreResource,
    WebhookError,
    WebhookMaybeTaken,
)
from chargeback_pipeline.storage import keys

ALERT_ASSETS = (BUDGET_STATUS_KEY, COST_ANOMALIES_KEY)
SENSOR_NAME = "budget_and_anomaly_alerts"
MAX_POSTS_PER_TICK = 10
POSTING_SECONDS_PER_TICK = 30  # a tick stops posting after this long (ticks time out at 60 s)
MAX_PAGES = 20  # of 1,000 materializations per asset per tick; the rest is read on the next tick


def new_alerts(instance: dg.DagsterInstance, ledger: Ledger, oldest_day: date | None) -> tuple[list[Alert], int]:
    """The alerts of the materializations after the ledger's, in order, and how many were too old to send
    (days before `oldest_day`: a first start on a long history must not page for last year)."""
    found, stale = [], 0
    for key in ALERT_ASSETS:
        name = key.to_user_string()
        for _ in range(MAX_PAGES):
            page = instance.fetch_materializations(
                dg.AssetRecordsFilter(asset_key=key, after_storage_id=ledger.after.get(name)),
                limit=1000,
                ascending=True,
            )
            for record in page.records:
                ledger.after[name] = record.storage_id
                entry = record.asset_materialization.metadata.get("alerts")
                if entry is None:
                    continue
                if oldest_day and record.partition_key and date.fromisoformat(record.partition_key) < oldest_day:
                    stale += len(entry.value)
                    continue
                found += [Alert(**alert) for alert in entry.value]
            if not page.has_more:
                break
    return found, stale


def alert_sensor(
    max_age_days: int | None = 7,
    minimum_interval_seconds: int = 60,
    default_status: dg.DefaultSensorStatus = dg.DefaultSensorStatus.RUNNING,
) -> dg.SensorDefinition:
    """The sensor; alerts of days more than `max_age_days` old when first read are logged, not posted."""

    @dg.sensor(
        name=SENSOR_NAME,
        minimum_interval_seconds=minimum_interval_seconds,
        default_status=default_status,
        description=(
            "Posts each budget crossing (once per product, threshold and month) and each cost anomaly (once "
            "per product, model and day) to CHARGEBACK_ALERT_WEBHOOK_URL (Slack or Teams). An alert the "
            "webhook refuses is retried on later ticks until it is taken. The queue (alerts still to send, ids "
            f"sent) is the file {keys.ALERT_QUEUE} beside the reports; the cursor is how far the sensor read "
            "each asset's materializations (their storage ids)."
        ),
    )
    def budget_and_anomaly_alerts(
        context: dg.SensorEvaluationContext, alert_webhook: AlertWebhookResource, reports: ObjectStoreResource
    ):
        store = reports.store()
        stored = store.read_bytes(keys.ALERT_QUEUE) if store.exists(keys.ALERT_QUEUE) else None
        ledger = Ledger.of_stored(context.cursor, stored)
        today = datetime.now(UTC).date()
        oldest = today - timedelta(days=max_age_days) if max_age_days is not None else None
        found, stale = new_alerts(context.instance, ledger, oldest)
        for alert in found:
            if not alert.has_evidence:
                context.log.info(f"{alert.id} not queued: a forecast alert without its minimum of published days")
        queued = ledger.queue(found)
        if stale:
            context.log.info(f"{stale} alert(s) of days before {oldest} not sent (too old when first read)")
        sent, problem = 0, ""
        if alert_webhook.url:
            started = time.monotonic()
            for alert in list(ledger.pending[:MAX_POSTS_PER_TICK]):
                if time.monotonic() - started > POSTING_SECONDS_PER_TICK:
                    break
                try:
                    alert_webhook.post(payload(alert, alert_webhook.payload_format), idempotency_key=alert.id)
                except WebhookMaybeTaken as error:  # sent, unanswered: taken, never posted twice
                    context.log.warning(f"{error}; {alert.id} recorded as taken")
                except WebhookError as error:
                    problem = f"; {error}; {len(ledger.pending)} alert(s) kept for the next tick"
                    context.log.warning(str(error))
                    break
                ledger.mark_sent(alert)
                sent += 1
        else:
            problem = (
                f"; CHARGEBACK_ALERT_WEBHOOK_URL is not set, {len(ledger.pending)} alert(s) waiting in "
                f"{keys.ALERT_QUEUE}"
            )
        for alert in ledger.prune(today):
            context.log.warning(f"alert queue full: dropped {alert.id}")
        queue = ledger.queue_file()
        if queue != stored:  # written before the cursor moves (module docstring)
            store.write_bytes(keys.ALERT_QUEUE, queue)
        context.update_cursor(ledger.position())
        return dg.SkipReason(f"{queued} new alert(s), {sent} posted{problem}")

    return budget_and_anomaly_alerts
