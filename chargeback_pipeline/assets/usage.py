"""Attribution (hourly, with its quarantine) and the per-product daily rollup, computed in DuckDB."""

from collections import Counter
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import dagster as dg
import pyarrow as pa
import pyarrow.compute as pc

from chargeback_pipeline import checks, sql
from chargeback_pipeline.assets.raw import HOUR, OWNERS, RAW_GATEWAY, RAW_LLM, raw_gateway_logs, raw_llm_logs
from chargeback_pipeline.content_hash import record_hour_content, record_run_summary
from chargeback_pipeline.lake import Lake, day_key, hour_key
from chargeback_pipeline.metadata import markdown_table, table_schema
from chargeback_pipeline.partitions import daily_partitions, days_in, hourly_partitions, hours_in
from chargeback_pipeline.resources import DataQualityPolicy, LogSourceResource, ObjectStoreResource
from chargeback_pipeline.schemas import GATEWAY_LOG_SCHEMA, LLM_LOG_SCHEMA, SOURCE_REJECT_SCHEMA

ATTRIBUTED = "attributed_requests"
QUARANTINE = "quarantined_records"
DAILY_USAGE = "daily_product_usage"
# The hour's logged tokens per deployment: written by the attribution (which de-duplicates the LLM log
# anyway), read by deployment_reconciliation.
LOGGED_TOKENS = "hourly_logged_tokens"
LOGGED_TOKENS_MODEL = "intermediate/int_hour_logged_tokens"
STAGING_MODELS = [
    "staging/stg_gateway_checked",
    "staging/stg_gateway_requests",
    "staging/stg_llm_checked",
    "staging/stg_llm_records",
    "intermediate/int_llm_requests",
]
DAILY_USAGE_MODEL = "marts/fct_daily_product_usage"
ATTRIBUTED_KEY, QUARANTINE_KEY = dg.AssetKey(ATTRIBUTED), dg.AssetKey(QUARANTINE)


def known_deployments_table(names: list[str]) -> pa.Table:
    return pa.table({"deployment_name": pa.array(sorted(names), pa.string())})


def hour_params(hour: datetime, known_deployments: list[str], **more) -> dict:
    """The bound parameters of an hour's models."""
    return {"window_start": hour, "window_end": hour + HOUR, "known_deployments": list(known_deployments), **more}


def stage_hour(con, lake: Lake, hour: datetime, known_deployments: list[str]) -> None:
    """Register one hour's landed raw logs and build the staging models over them (the ephemeral ones
    are inlined into the marts that read them; pass the marts `hour_params` too)."""
    sql.build_models(
        con,
        STAGING_MODELS,
        relations={
            "raw_gateway_logs": lake.relation(hour_key(RAW_GATEWAY, hour), GATEWAY_LOG_SCHEMA),
            "raw_llm_logs": lake.relation(hour_key(RAW_LLM, hour), LLM_LOG_SCHEMA),
            "raw_gateway_rejected": lake.relation(hour_key(RAW_GATEWAY, hour, "rejected"), SOURCE_REJECT_SCHEMA),
            "raw_llm_rejected": lake.relation(hour_key(RAW_LLM, hour, "rejected"), SOURCE_REJECT_SCHEMA),
        },
        params=hour_params(hour, known_deployments),
    )


def _count(column: pa.ChunkedArray) -> int:
    return pc.sum(column.cast(pa.int64())).as_py() or 0


_HOUR_MEASURES = """
    select
        count(*) as requests,
        count(distinct correlation_id) + (count(*) > count(correlation_id))::int as distinct_ids,
        count(*) filter (where is_billable) as billable,
        count(*) - count(*) filter (where is_success) as failed,
        count(*) - count(*) filter (where has_llm_record) as without_llm_record,
        coalesce(sum(total_tokens) filter (where is_billable), 0) as billable_tokens,
        coalesce(sum(gateway_records), 0) - count(*) as duplicates,
        coalesce(sum(nonzero_later_chunks), 0) as chunk_tokens,
        count(*) filter (where llm_records > 1) as chunked
    from attributed
"""


def hour_measures(con, attributed: sql.Relation) -> dict[str, int]:
    """An hour's counts for the metadata and checks, in one pass of DuckDB over its attributed requests
    (a null id, were there one, counts as one more distinct id)."""
    sql.register(con, "attributed", attributed)
    cursor = con.execute(_HOUR_MEASURES)
    names = [column[0] for column in cursor.description]
    (row,) = cursor.fetchall()
    return {name: int(value) for name, value in zip(names, row, strict=True)}


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
        stage_hour(con, store, hour, known_deployments)
        params = hour_params(hour, known_deployments, core_start=hour + margin, core_end=hour + HOUR - margin)
        # DuckDB writes the hour's requests itself (in parallel, never held in Python); the counts are
        # then read back from the written file.
        with store.writing(hour_key(ATTRIBUTED, hour)) as attributed:
            sql.copy_model(con, "marts/fct_attributed_requests", params, attributed.path)
            measures = hour_measures(con, sql.ParquetFiles((str(attributed.path),)))
            schema = attributed.schema()
        ((several,),) = con.execute("select count(*) from int_llm_requests where names_several_deployments").fetchall()
        params["has_requests_on_several_deployments"] = several > 0
        logged_tokens = sql.select_model(con, LOGGED_TOKENS_MODEL, params)
        # Raw rows the attribution did not use failed the checks: only then are the raw rows searched
        # for them (a clean hour is not checked twice).
        raw_rows = sql.select_model(con, "intermediate/int_hour_row_counts", params).to_pylist()[0]
        trusted_gateway_rows = measures["requests"] + measures["duplicates"]
        params["gateway_has_untrusted_rows"] = raw_rows["gateway_rows"] != trusted_gateway_rows
        params["llm_has_untrusted_rows"] = raw_rows["llm_rows"] != raw_rows["trusted_llm_rows"]
        quarantined = sql.select_model(con, "marts/fct_quarantined_records", params)
        gaps = sql.select_model(con, "marts/fct_gateway_completeness", params).to_pylist()[0]
    finally:
        con.close()
    return AttributedHour(
        hour=hour,
        attributed_digest=attributed.digest,
        logged_tokens_digest=store.write(hour_key(LOGGED_TOKENS, hour), logged_tokens),
        quarantined_digest=store.write(hour_key(QUARANTINE, hour), quarantined),
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


@dg.multi_asset(
    specs=[
        dg.AssetSpec(
            ATTRIBUTED,
            deps=[raw_gateway_logs, raw_llm_logs],
            group_name="usage",
            owners=OWNERS,
            kinds={"duckdb", "parquet"},
            description=(
                "One row per APIM request of the hour: the deduplicated gateway row joined on CorrelationId to "
                "its LLM request (tokens from SequenceNumber 0 only), with its product, subscription, model, "
                "deployment and backend. Billable = successful and has an LLM record."
            ),
        ),
        dg.AssetSpec(
            QUARANTINE,
            deps=[raw_gateway_logs, raw_llm_logs],
            group_name="usage",
            owners=OWNERS,
            kinds={"duckdb", "parquet"},
            description=(
                "Raw rows of the hour that could not be trusted (missing or malformed CorrelationId, "
                "unparseable values, negative tokens, unknown deployment), with the reason. Never attributed, "
                "never silently dropped: counted here and judged by the quarantine-rate check."
            ),
        ),
    ],
    check_specs=[
        dg.AssetCheckSpec(checks.UNIQUE_CORRELATION, asset=ATTRIBUTED, description="One row per CorrelationId."),
        dg.AssetCheckSpec(checks.SEQUENCE_ZERO_TOKENS, asset=ATTRIBUTED, description="Later chunks carry no tokens."),
        dg.AssetCheckSpec(
            checks.GATEWAY_COMPLETE,
            asset=ATTRIBUTED,
            description="LLM requests in the core of each hour have their gateway row (no missing gateway data).",
        ),
        dg.AssetCheckSpec(
            checks.QUARANTINE_RATE, asset=ATTRIBUTED, description="Quarantined rows stay under the configured rate."
        ),
    ],
    partitions_def=hourly_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
)
def attributed_requests(
    context: dg.AssetExecutionContext, lake: ObjectStoreResource, source: LogSourceResource, policy: DataQualityPolicy
):
    store = lake.lake()
    margin = timedelta(minutes=source.llm_margin_minutes)
    totals = Counter()
    reasons = Counter()
    completeness = []
    schema = quarantine_schema = None
    with sql.shared_database() as database:
        attributed_hours = [
            attribute_hour(store, hour, policy.known_deployments, margin, database)
            for hour in hours_in(context.partition_time_window)
        ]
    for done in attributed_hours:
        hour, gaps = done.hour, done.gaps
        record_hour_content(
            context,
            hour,
            done.attributed_digest,
            done.logged_tokens_digest,
            asset_key=ATTRIBUTED_KEY,
            metadata={"dagster/row_count": done.measures["requests"]},
        )
        record_hour_content(
            context,
            hour,
            done.quarantined_digest,
            asset_key=QUARANTINE_KEY,
            metadata={"dagster/row_count": done.quarantined_rows},
        )
        schema, quarantine_schema = done.schema, done.quarantine_schema
        totals.update(done.measures, quarantined=done.quarantined_rows)
        reasons.update(done.reasons)
        completeness.append(
            {
                "hour": f"{hour:%Y-%m-%d %H:00}",
                "core_llm_requests": gaps["core_llm_requests"],
                "without_gateway_row": gaps["core_llm_requests_without_gateway_row"],
                "without_gateway_percent": checks._percent(
                    gaps["core_llm_requests_without_gateway_row"], gaps["core_llm_requests"]
                ),
            }
        )
    hours = [done.hour for done in attributed_hours]
    record_run_summary(
        context,
        hours,
        {
            "run_rows": totals["requests"],
            "billable_requests": totals["billable"],
            "failed_requests": totals["failed"],
            "requests_without_llm_record": totals["without_llm_record"],
            "billable_total_tokens": totals["billable_tokens"],
            "duplicate_gateway_rows_removed": totals["duplicates"],
            "later_chunks_with_tokens": totals["chunk_tokens"],
            "dagster/column_schema": table_schema(schema),
        },
        asset_key=ATTRIBUTED_KEY,
    )
    record_run_summary(
        context,
        hours,
        {
            "run_rows": totals["quarantined"],
            "by_reason": dg.MetadataValue.json(dict(sorted(reasons.items()))),
            "dagster/column_schema": table_schema(quarantine_schema),
        },
        asset_key=QUARANTINE_KEY,
    )
    yield dg.MaterializeResult(asset_key=ATTRIBUTED_KEY)
    yield dg.MaterializeResult(asset_key=QUARANTINE_KEY)
    yield checks.uniqueness(ATTRIBUTED_KEY, totals["requests"], totals["distinct_ids"])
    yield checks.sequence_zero_tokens(ATTRIBUTED_KEY, totals["chunk_tokens"], totals["chunked"])
    yield checks.gateway_completeness(ATTRIBUTED_KEY, completeness, policy.orphan_llm_max_percent)
    yield checks.quarantine_rate(
        ATTRIBUTED_KEY, totals["quarantined"], totals["requests"], dict(reasons), policy.quarantine_max_percent
    )


def day_hours(day: date) -> list[datetime]:
    midnight = datetime(day.year, day.month, day.day, tzinfo=UTC)
    return [midnight + n * HOUR for n in range(24)]


def rollup_day(lake: Lake, day: date) -> tuple[pa.Table, dict]:
    """Per-product usage of one day from its 24 attributed hours, and the hours' own billable totals."""
    # DuckDB reads the day's 24 attributed hours itself, only the columns it needs: a large tenant's
    # day (10M requests) is never held in memory.
    attributed = lake.relation([hour_key(ATTRIBUTED, hour) for hour in day_hours(day)])
    con = sql.connect()
    try:
        sql.register(con, "attributed_requests", attributed)
        ((tokens, calls, failed),) = con.execute(_HOURLY_TOTALS).fetchall()
        usage = sql.select_model(con, DAILY_USAGE_MODEL, {"usage_date": day})
    finally:
        con.close()
    return usage, {"total_tokens": int(tokens), "calls": int(calls), "failed_calls": int(failed)}


# The hours' own totals, over every attributed row (whatever its date), for the daily-equals-hourly check.
_HOURLY_TOTALS = """
    select
        coalesce(sum(total_tokens) filter (where is_billable), 0),
        count(*) filter (where is_billable),
        count(*) - count(*) filter (where is_success)
    from attributed_requests
"""


@dg.asset(
    partitions_def=daily_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    deps=[dg.AssetDep(ATTRIBUTED_KEY)],
    group_name="usage",
    owners=OWNERS,
    kinds={"duckdb", "parquet"},
    description=(
        "Per-product usage of the day (UTC) by subscription, model, deployment and backend: prompt, "
        "completion and total tokens and calls of billable requests, failed calls, first and last seen."
    ),
    check_specs=[
        dg.AssetCheckSpec(
            checks.DAILY_EQUALS_HOURLY,
            asset=DAILY_USAGE,
            description="Token, call and failed-call totals equal the sum of the day's 24 attributed hours.",
        )
    ],
)
def daily_product_usage(context: dg.AssetExecutionContext, lake: ObjectStoreResource):
    store = lake.lake()
    tables, hourly_sum = [], Counter()
    for day in days_in(context.partition_time_window):
        usage, hourly_totals = rollup_day(store, day)
        store.write(day_key(DAILY_USAGE, day), usage)
        tables.append(usage)
        hourly_sum.update(hourly_totals)
    usage = pa.concat_tables(tables)
    daily_totals = {k: _count(usage[k]) for k in ("total_tokens", "calls", "failed_calls")}
    yield dg.MaterializeResult(
        metadata={
            "dagster/row_count": usage.num_rows,
            "total_tokens": daily_totals["total_tokens"],
            "calls": daily_totals["calls"],
            "failed_calls": daily_totals["failed_calls"],
            "products": len(pc.unique(usage["product_id"])),
            "dagster/column_schema": table_schema(usage.schema),
            "top_products": markdown_table(top_products(usage)),
        }
    )
    yield checks.daily_equals_hourly(dg.AssetKey(DAILY_USAGE), daily_totals, dict(hourly_sum))


def top_products(usage: pa.Table) -> pa.Table:
    by_product = usage.group_by("product_id").aggregate([("total_tokens", "sum"), ("calls", "sum")])
    by_product = by_product.rename_columns(["product_id", "total_tokens", "calls"])
    return by_product.sort_by([("total_tokens", "descending"), ("product_id", "ascending")])
