"""The money engine's inputs: a day's billable usage and unattributed tokens, read from the lake (SQL
models over the attributed hours), and a month's published daily chargebacks, read from the reports."""

from dataclasses import dataclass
from datetime import date

import pyarrow as pa

from chargeback_pipeline.core.attribution import attributed_day_with_callers
from chargeback_pipeline.core.billing.cost_basis import CHARGEBACK_SCHEMA, as_published
from chargeback_pipeline.core.periods import day_hours, days_of_month
from chargeback_pipeline.storage import keys, sql
from chargeback_pipeline.storage.lake import Lake
from chargeback_pipeline.storage.object_store import ObjectStore
from chargeback_pipeline.storage.parquet_bytes import read_parquet_bytes
from chargeback_pipeline.storage.publication_manifest import day_manifest_key, digest, read_manifest
from chargeback_pipeline.storage.schemas import CALLER_ID

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


def _published_chargebacks(reports: ObjectStore, month: date) -> tuple[list[pa.Table], list[date]]:
    """The chargeback of each of the month's published days as read back, and the days that have none.

    Published means listed in the day's publication manifest, read from the report target, never from the
    lake (which may be empty, or hold a day that was computed but held back). A published chargeback whose
    bytes no longer match its manifest (deleted, cut short, edited) is an error naming it: a month is never
    stated from files the manifest does not vouch for."""
    missing, tables = [], []
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
        tables.append(read_parquet_bytes(data))
    return tables, missing


@dataclass(frozen=True)
class PublishedMonth:
    """The month's published daily chargebacks, read once (`_published_chargebacks` says what published
    means), so the statement and the statement by caller are summed from the same bytes: a day re-published
    between two reads cannot make them disagree."""

    lines: pa.Table  # CHARGEBACK_SCHEMA: with their cost basis
    caller_lines: pa.Table | None  # CHARGEBACK_CALLER_SCHEMA (caller_id null on a day published without
    # callers), or None when no published day of the month has callers
    days_missing: list[date]  # the month's days with no published chargeback


def published_month(reports: ObjectStore, month: date) -> PublishedMonth:
    """The month's published days, from the report target, never from the lake (whose lines of a day
    computed again and held back are not what was published)."""
    tables, missing = _published_chargebacks(reports, month)
    lines = pa.concat_tables([as_published(t) for t in tables]) if tables else CHARGEBACK_SCHEMA.empty_table()
    with_callers = any(CALLER_ID in table.column_names for table in tables)
    caller_lines = (
        pa.concat_tables([as_published(table, with_callers=True) for table in tables]) if with_callers else None
    )
    return PublishedMonth(lines, caller_lines, missing)
