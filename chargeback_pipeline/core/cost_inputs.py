"""The money engine's inputs, read from the lake: a day's billable usage and unattributed tokens
(SQL models over the attributed hours), and a month's published daily chargebacks."""

from datetime import date

import pyarrow as pa

from chargeback_pipeline.core.attribution import attributed_day_with_callers
from chargeback_pipeline.core.billing.cost_basis import CHARGEBACK_SCHEMA, as_published
from chargeback_pipeline.core.billing.schemas import DAILY_CHARGEBACK_CALLER_SCHEMA
from chargeback_pipeline.core.callers import with_caller_id
from chargeback_pipeline.core.periods import day_hours, days_of_month
from chargeback_pipeline.storage import keys, sql
from chargeback_pipeline.storage.lake import Lake
from chargeback_pipeline.storage.object_store import ObjectStore
from chargeback_pipeline.storage.parquet_bytes import read_parquet_bytes
from chargeback_pipeline.storage.publication_manifest import day_manifest_key, digest, read_manifest

HOURLY_USAGE_MODEL = "marts/fct_hourly_billable_usage"
HOURLY_CALLER_USAGE_MODEL = "marts/fct_hourly_billable_caller_usage"  # instead, for days attributed with callers
UNATTRIBUTED_MODEL = "marts/fct_hourly_unattributed_tokens"
NOT_BILLABLE_MODEL = "marts/fct_daily_logged_not_billable_tokens"


def allocation_inputs(lake: Lake, day: date) -> tuple[pa.Table, pa.Table, pa.Table]:
    """The day's billable usage per hour and line (and caller, where attributed with callers), its
    unattributed tokens per backend-deployment-hour, and its logged tokens no product is billed for per
    backend-deployment (with what it had to clip)."""
    attributed, with_callers = attributed_day_with_callers(lake, day)
    relations = {
        "attributed_requests": attributed,
        "deployment_reconciliation": lake.relation(
            [keys.hour_key(keys.HOURLY_RECONCILIATION, hour) for hour in day_hours(day)]
        ),
    }
    con = sql.connect()
    try:
        sql.build_models(con, [], relations)
        return (
            sql.select_model(
                con, HOURLY_CALLER_USAGE_MODEL if with_callers else HOURLY_USAGE_MODEL, {"usage_date": day}
            ),
            sql.select_model(con, UNATTRIBUTED_MODEL),
            sql.select_model(con, NOT_BILLABLE_MODEL, {"usage_date": day}),
        )
    finally:
        con.close()


def published_days(reports: ObjectStore, month: date) -> tuple[pa.Table, list[date]]:
    """The chargeback lines of the month's published days (CHARGEBACK_SCHEMA: with their cost basis), and
    the days that have none.

    Published means listed in the day's publication manifest, read from the report target, never from the
    lake (which may be empty, or hold a day that was computed but held back). A published chargeback whose
    bytes no longer match its manifest (deleted, cut short, edited) is an error naming it: a month is never
    stated from files the manifest does not vouch for."""
    present, missing, tables = [], [], []
    for day in days_of_month(month):
        manifest = read_manifest(reports, day_manifest_key(day))
        key = keys.chargeback_key(day, "parquet")
        published = manifest.outputs.get("chargeback", {}).get("files", {}) if manifest else {}
        if key not in published:
            missing.append(day)
            continue
        data = reports.read_bytes(key) if reports.exists(key) else None
        if data is None or digest(data) != published[key]:
            raise ValueError(
                f"{reports.url(key)} is {'missing' if data is None else 'not the file published'} (its manifest "
                f"{reports.url(day_manifest_key(day))} records another): re-publish {day} "
                f"(`chargeback backfill {day}`) before stating {month:%Y-%m}"
            )
        present.append(day)
        tables.append(as_published(read_parquet_bytes(data)))
    return (pa.concat_tables(tables) if tables else CHARGEBACK_SCHEMA.empty_table()), missing


def published_caller_days(lake: Lake, month: date) -> pa.Table | None:
    """The month's published daily chargeback lines with their callers (DAILY_CHARGEBACK_CALLER_SCHEMA),
    or None when no day of it was charged back with callers (a day without them: caller_id null)."""
    tables = []
    for day in days_of_month(month):
        # The chargeback as billed_chargeback stated it (actual once the export covers the day), else the estimate.
        key = keys.day_key(keys.BILLED_CHARGEBACK, day)
        key = key if lake.store.exists(key) else keys.day_key(keys.DAILY_CHARGEBACK, day)
        if lake.store.exists(key):
            lines, with_callers = with_caller_id(lake.read(key))
            tables.append(
                (lines.select(DAILY_CHARGEBACK_CALLER_SCHEMA.names).cast(DAILY_CHARGEBACK_CALLER_SCHEMA), with_callers)
            )
    if not any(with_callers for _, with_callers in tables):
        return None
    return pa.concat_tables([lines for lines, _ in tables])
