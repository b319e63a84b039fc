"""Attribution (hourly, with its quarantine) and the per-product daily rollup, computed in DuckDB."""

from collections import Counter
from datetime import UTC, date, datetime, timedelta

import dagster as dg
import pyarrow as pa
import pyarrow.compute as pc

from chargeback_pipeline import checks, sql
from chargeback_pipeline.assets.raw import HOUR, OWNERS, RAW_GATEWAY, RAW_LLM, raw_gateway_logs, raw_llm_logs
from chargeback_pipeline.content_hash import record_hour_content
from chargeback_pipeline.lake import Lake, day_key, hour_key
from chargeback_pipeline.metadata import markdown_table, table_schema
from chargeback_pipeline.partitions import daily_partitions, days_in, hourly_partitions, hours_in
from chargeback_pipeline.resources import DataQualityPolicy, LogSourceResource, ObjectStoreResource
from chargeback_pipeline.schemas import GATEWAY_LOG_SCHEMA, LLM_LOG_SCHEMA, SOURCE_REJECT_SCHEMA

ATTRIBUTED = "attributed_requests"
QUARANTINE = "quarantined_records"
DAILY_USAGE = "daily_product_usage"
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


def stage_hour(con, lake: Lake, hour: datetime, known_deployments: list[str]) -> None:
    """Register one hour's landed raw logs and build the staging models over them."""
    sql.build_models(
        con,
        STAGING_MODELS,
        relations={
            "raw_gateway_logs": lake.read(hour_key(RAW_GATEWAY, hour), GATEWAY_LOG_SCHEMA),
            "raw_llm_logs": lake.read(hour_key(RAW_LLM, hour), LLM_LOG_SCHEMA),
            "raw_gateway_rejected": lake.read(hour_key(RAW_GATEWAY, hour, "rejected"), SOURCE_REJECT_SCHEMA),
            "raw_llm_rejected": lake.read(hour_key(RAW_LLM, hour, "rejected"), SOURCE_REJECT_SCHEMA),
            "known_deployments": known_deployments_table(known_deployments),
        },
        params={"window_start": hour, "window_end": hour + HOUR},
    )


def _count(column: pa.ChunkedArray) -> int:
    return pc.sum(column.cast(pa.int64())).as_py() or 0


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
    for hour in hours_in(context.partition_time_window):
        con = sql.connect()
        try:
            stage_hour(con, store, hour, policy.known_deployments)
            window = {"window_start": hour, "window_end": hour + HOUR}
            attributed = sql.select_model(con, "marts/fct_attributed_requests", window)
            quarantined = sql.select_model(con, "marts/fct_quarantined_records", window)
            core = {"core_start": hour + margin, "core_end": hour + HOUR - margin}
            gaps = sql.select_model(con, "marts/fct_gateway_completeness", core).to_pylist()[0]
        finally:
            con.close()
        record_hour_content(
            context, hour, store.write(hour_key(ATTRIBUTED, hour), attributed), asset_key=ATTRIBUTED_KEY
        )
        record_hour_content(
            context, hour, store.write(hour_key(QUARANTINE, hour), quarantined), asset_key=QUARANTINE_KEY
        )
        schema, quarantine_schema = attributed.schema, quarantined.schema
        totals.update(
            requests=attributed.num_rows,
            distinct_ids=len(pc.unique(attributed["correlation_id"])),
            billable=_count(attributed["is_billable"]),
            failed=attributed.num_rows - _count(attributed["is_success"]),
            without_llm_record=attributed.num_rows - _count(attributed["has_llm_record"]),
            billable_tokens=_count(attributed.filter(attributed["is_billable"])["total_tokens"]),
            duplicates=_count(attributed["gateway_records"]) - attributed.num_rows,
            chunk_tokens=_count(attributed["nonzero_later_chunks"]),
            chunked=_count(pc.greater(attributed["llm_records"], 1)),
            quarantined=quarantined.num_rows,
        )
        reasons.update(
            f"{t}: {r}"
            for t, r in zip(quarantined["source_table"].to_pylist(), quarantined["reason"].to_pylist(), strict=True)
        )
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
    yield dg.MaterializeResult(
        asset_key=ATTRIBUTED_KEY,
        metadata={
            "dagster/row_count": totals["requests"],
            "billable_requests": totals["billable"],
            "failed_requests": totals["failed"],
            "requests_without_llm_record": totals["without_llm_record"],
            "billable_total_tokens": totals["billable_tokens"],
            "duplicate_gateway_rows_removed": totals["duplicates"],
            "later_chunks_with_tokens": totals["chunk_tokens"],
            "dagster/column_schema": table_schema(schema),
        },
    )
    yield dg.MaterializeResult(
        asset_key=QUARANTINE_KEY,
        metadata={
            "dagster/row_count": totals["quarantined"],
            "by_reason": dg.MetadataValue.json(dict(sorted(reasons.items()))),
            "dagster/column_schema": table_schema(quarantine_schema),
        },
    )
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
    attributed = pa.concat_tables([lake.read(hour_key(ATTRIBUTED, hour)) for hour in day_hours(day)])
    billable = attributed.filter(attributed["is_billable"])
    hourly_totals = {
        "total_tokens": _count(billable["total_tokens"]),
        "calls": billable.num_rows,
        "failed_calls": attributed.num_rows - _count(attributed["is_success"]),
    }
    con = sql.connect()
    try:
        usage = sql.run_models(con, [DAILY_USAGE_MODEL], {"attributed_requests": attributed}, {"usage_date": day})
    finally:
        con.close()
    return usage, hourly_totals


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
