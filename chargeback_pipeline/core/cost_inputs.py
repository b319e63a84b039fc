"""The money engine's inputs, read from the lake: a day's billable usage and unattributed tokens
(SQL models over the attributed hours), and a month's published daily chargebacks."""

from datetime import date

import pyarrow as pa

from chargeback_pipeline.core.attribution import attributed_day_with_callers
from chargeback_pipeline.core.billing.schemas import DAILY_CHARGEBACK_CALLER_SCHEMA, DAILY_CHARGEBACK_SCHEMA
from chargeback_pipeline.core.callers import with_caller_id
from chargeback_pipeline.core.periods import day_hours, days_of_month
from chargeback_pipeline.storage import keys, sql
from chargeback_pipeline.storage.lake import Lake

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


def published_days(lake: Lake, month: date) -> tuple[pa.Table, list[date]]:
    """The daily chargeback lines of the month's days that have one, and the days that have none."""
    days = days_of_month(month)
    present = [day for day in days if lake.store.exists(keys.day_key(keys.DAILY_CHARGEBACK, day))]
    missing = [day for day in days if day not in present]
    tables = [lake.read(keys.day_key(keys.DAILY_CHARGEBACK, day), DAILY_CHARGEBACK_SCHEMA) for day in present]
    return (pa.concat_tables(tables) if tables else DAILY_CHARGEBACK_SCHEMA.empty_table()), missing


def published_caller_days(lake: Lake, month: date) -> pa.Table | None:
    """The month's published daily chargeback lines with their callers (DAILY_CHARGEBACK_CALLER_SCHEMA),
    or None when no day of it was charged back with callers (a day without them: caller_id null)."""
    tables = []
    for day in days_of_month(month):
        key = keys.day_key(keys.DAILY_CHARGEBACK, day)
        if lake.store.exists(key):
            lines, with_callers = with_caller_id(lake.read(key))
            tables.append(
                (lines.select(DAILY_CHARGEBACK_CALLER_SCHEMA.names).cast(DAILY_CHARGEBACK_CALLER_SCHEMA), with_callers)
            )
    if not any(with_callers for _, with_callers in tables):
        return None
    return pa.concat_tables([lines for lines, _ in tables])
