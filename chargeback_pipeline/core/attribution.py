"""Attribution: one hour's APIM requests joined to their LLM records, with what could not be trusted
quarantined, and the per-product rollup of a day. Dagster-free: the SQL models of `dbt_like_sql/` run in
DuckDB over the lake's landed hours, and the results are written back to the lake.
"""

from collections import Counter
from dataclasses import dataclass
from datetime import date, datetime, timedelta

import pyarrow as pa

from chargeback_pipeline.core.callers import excluded_columns, with_caller_column, with_caller_id
from chargeback_pipeline.core.periods import HOUR, day_hours
from chargeback_pipeline.storage import keys, sql
from chargeback_pipeline.storage.lake import Lake
from chargeback_pipeline.storage.schemas import LLM_LOG_SCHEMA, SOURCE_REJECT_SCHEMA

STAGING_MODELS = [
    "staging/stg_apim__gateway_checked",
    "staging/stg_apim__gateway_requests",
    "staging/stg_apim__llm_checked",
    "staging/stg_apim__llm_records",
    "intermediate/int_llm_requests",
]
ATTRIBUTED_MODEL = "marts/fct_attributed_requests"
LOGGED_TOKENS_MODEL = "intermediate/int_hour_logged_tokens"
ROW_COUNTS_MODEL = "intermediate/int_hour_row_counts"
QUARANTINE_MODEL = "marts/fct_quarantined_records"
COMPLETENESS_MODEL = "marts/fct_gateway_completeness"
HOUR_MEASURES_MODEL = "marts/fct_hour_measures"
DAY_HOURLY_TOTALS_MODEL = "marts/fct_day_hourly_totals"
DAILY_USAGE_MODEL = "marts/fct_daily_product_usage"
DAILY_CALLER_USAGE_MODEL = "marts/fct_daily_caller_usage"  # instead, for days attributed with callers


def hour_params(hour: datetime, known_deployments: list[str], **more) -> dict:
    """The bound parameters of an hour's models."""
    return {"window_start": hour, "window_end": hour + HOUR, "known_deployments": list(known_deployments), **more}


def stage_hour(con, lake: Lake, hour: datetime, known_deployments: list[str]) -> bool:
    """Register one hour's landed raw logs and build the staging models over them (the ephemeral ones
    are inlined into the marts that read them; pass the marts `hour_params` too). Returns whether the
    hour was landed with its callers (core/callers.py)."""
    return stage_relations(
        con,
        {
            "raw_gateway_logs": lake.relation(keys.hour_key(keys.RAW_GATEWAY, hour)),  # as written: maybe CallerId
            "raw_llm_logs": lake.relation(keys.hour_key(keys.RAW_LLM, hour), LLM_LOG_SCHEMA),
            "raw_gateway_rejected": lake.relation(
                keys.hour_key(keys.RAW_GATEWAY, hour, keys.REJECTED_PART), SOURCE_REJECT_SCHEMA
            ),
            "raw_llm_rejected": lake.relation(
                keys.hour_key(keys.RAW_LLM, hour, keys.REJECTED_PART), SOURCE_REJECT_SCHEMA
            ),
        },
        hour,
        known_deployments,
    )


def stage_relations(con, relations: dict[str, sql.Relation], hour: datetime, known_deployments: list[str]) -> bool:
    """Build the staging models of `hour` over raw relations named as the lake's (raw_gateway_logs,
    raw_llm_logs and their *_rejected). Returns whether the gateway rows carry their callers."""
    gateway, with_callers = with_caller_column(relations["raw_gateway_logs"])
    relations = {**relations, "raw_gateway_logs": gateway}
    sql.build_models(con, STAGING_MODELS, relations=relations, params=hour_params(hour, known_deployments))
    return with_callers


def hour_measures(con, attributed: sql.Relation) -> dict[str, int]:
    """An hour's counts for the metadata and checks (`marts/fct_hour_measures`)."""
    sql.register(con, "attributed_requests", attributed)
    (row,) = sql.select_model(con, HOUR_MEASURES_MODEL).to_pylist()
    return {name: int(value) for name, value in row.items()}


@dataclass(frozen=True)
class AttributedHour:
    """What attributing one hour wrote (as content digests) and measured."""

    hour: datetime
    attributed_digest: str
    logged_tokens_digest: str
    quarantined_digest: str
    measures: dict[str, int]
    quarantined_rows: int
    reasons: Counter
    gaps: dict
    schema: pa.Schema
    quarantine_schema: pa.Schema


def attribute_hour(
    store: Lake, hour: datetime, known_deployments: list[str], margin: timedelta, database=None
) -> AttributedHour:
    """Attribute one hour: its requests, its quarantined rows, its logged tokens per deployment (for the
    reconciliation) and its completeness, written to the lake.
    `database`: a `sql.shared_database()` to work in (default: a database of its own)."""
    con = sql.connect(database)
    try:
        with_callers = stage_hour(con, store, hour, known_deployments)
        params = hour_params(hour, known_deployments, core_start=hour + margin, core_end=hour + HOUR - margin)
        # DuckDB writes the hour's requests itself (in parallel, never held in Python); the counts are
        # then read back from the written file.
        with store.writing(keys.hour_key(keys.ATTRIBUTED, hour)) as attributed:
            sql.copy_model(con, ATTRIBUTED_MODEL, params, attributed.path, exclude=excluded_columns(with_callers))
            measures = hour_measures(con, sql.ParquetFiles((str(attributed.path),)))
            schema = attributed.schema()
            raw_rows = sql.select_model(con, ROW_COUNTS_MODEL, params).to_pylist()[0]
            params["has_requests_on_several_deployments"] = raw_rows["requests_on_several_deployments"] > 0
            # Reads the written requests (registered by hour_measures) for each record's backend.
            logged_tokens = sql.select_model(con, LOGGED_TOKENS_MODEL, params)
        # Raw rows the attribution did not use failed the checks: only then are the raw rows searched
        # for them (a clean hour is not checked twice).
        trusted_gateway_rows = measures["requests"] + measures["duplicates"]
        params["gateway_has_untrusted_rows"] = raw_rows["gateway_rows"] != trusted_gateway_rows
        params["llm_has_untrusted_rows"] = raw_rows["llm_rows"] != raw_rows["trusted_llm_rows"]
        quarantined = sql.select_model(con, QUARANTINE_MODEL, params)
        gaps = sql.select_model(con, COMPLETENESS_MODEL, params).to_pylist()[0]
    finally:
        con.close()
    return AttributedHour(
        hour=hour,
        attributed_digest=attributed.digest,
        logged_tokens_digest=store.write(keys.hour_key(keys.LOGGED_TOKENS, hour), logged_tokens),
        quarantined_digest=store.write(keys.hour_key(keys.QUARANTINE, hour), quarantined),
        measures=measures,
        quarantined_rows=quarantined.num_rows,
        reasons=Counter(
            f"{t}: {r}"
            for t, r in zip(quarantined["source_table"].to_pylist(), quarantined["reason"].to_pylist(), strict=True)
        ),
        gaps=gaps,
        schema=schema,
        quarantine_schema=quarantined.schema,
    )


def attributed_day(lake: Lake, day: date) -> sql.Relation:
    """The day's 24 attributed hours as one relation. Local objects are read by DuckDB itself, only the
    columns a query needs: a large tenant's day (10M requests) is never held in memory."""
    return lake.relation([keys.hour_key(keys.ATTRIBUTED, hour) for hour in day_hours(day)])


def attributed_day_with_callers(lake: Lake, day: date) -> tuple[sql.Relation, bool]:
    """The day's attributed hours with caller_id (null when attributed without callers), and whether
    they were attributed with callers (core/callers.py)."""
    return with_caller_id(attributed_day(lake, day))


def rollup_day(lake: Lake, day: date) -> tuple[pa.Table, dict]:
    """Per-product usage of one day from its 24 attributed hours, and the hours' own billable totals.
    With callers, per product and caller (PRODUCT_USAGE_SCHEMA plus caller_id)."""
    con = sql.connect()
    try:
        attributed, with_callers = attributed_day_with_callers(lake, day)
        sql.register(con, "attributed_requests", attributed)
        (hourly_totals,) = sql.select_model(con, DAY_HOURLY_TOTALS_MODEL).to_pylist()
        usage = sql.select_model(
            con, DAILY_CALLER_USAGE_MODEL if with_callers else DAILY_USAGE_MODEL, {"usage_date": day}
        )
    finally:
        con.close()
    return usage, {name: int(value) for name, value in hourly_totals.items()}
