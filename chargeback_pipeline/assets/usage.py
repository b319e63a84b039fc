"""Attribution (hourly) and the per-product daily rollup, computed by the SQL models in DuckDB."""

from datetime import UTC, date, datetime

import dagster as dg
import pyarrow as pa
import pyarrow.compute as pc

from chargeback_pipeline import sql
from chargeback_pipeline.assets.raw import HOUR, OWNERS, RAW_GATEWAY, RAW_LLM, raw_gateway_logs, raw_llm_logs
from chargeback_pipeline.lake import Lake, day_key, hour_key
from chargeback_pipeline.metadata import markdown_table, table_schema
from chargeback_pipeline.partitions import daily_partitions, days_in, hourly_partitions, hours_in
from chargeback_pipeline.resources import ObjectStoreResource
from chargeback_pipeline.schemas import GATEWAY_LOG_SCHEMA, LLM_LOG_SCHEMA

ATTRIBUTED = "attributed_requests"
DAILY_USAGE = "daily_product_usage"
ATTRIBUTION_MODELS = [
    "staging/stg_gateway_requests",
    "staging/stg_llm_records",
    "intermediate/int_llm_requests",
    "marts/fct_attributed_requests",
]
DAILY_USAGE_MODEL = "marts/fct_daily_product_usage"


def attribute_hour(lake: Lake, hour: datetime) -> pa.Table:
    """Attributed requests of one hour, from the landed raw logs of that hour."""
    con = sql.connect()
    try:
        return sql.run_models(
            con,
            ATTRIBUTION_MODELS,
            relations={
                "raw_gateway_logs": lake.read(hour_key(RAW_GATEWAY, hour), GATEWAY_LOG_SCHEMA),
                "raw_llm_logs": lake.read(hour_key(RAW_LLM, hour), LLM_LOG_SCHEMA),
            },
            params={"window_start": hour, "window_end": hour + HOUR},
        )
    finally:
        con.close()


def _count(column: pa.ChunkedArray) -> int:
    return pc.sum(column.cast(pa.int64())).as_py() or 0


@dg.asset(
    partitions_def=hourly_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    deps=[raw_gateway_logs, raw_llm_logs],
    group_name="usage",
    owners=OWNERS,
    kinds={"duckdb", "parquet"},
    description=(
        "One row per APIM request of the hour: the deduplicated gateway row joined on CorrelationId to its "
        "LLM request (tokens from SequenceNumber 0 only), with its product, subscription, model, "
        "deployment and backend. Billable = successful and has an LLM record."
    ),
)
def attributed_requests(context: dg.AssetExecutionContext, lake: ObjectStoreResource) -> dg.MaterializeResult:
    store = lake.lake()
    counts = dict.fromkeys(
        ["requests", "billable", "failed", "without_llm_record", "billable_tokens", "duplicates", "chunk_tokens"], 0
    )
    schema = None
    for hour in hours_in(context.partition_time_window):
        table = attribute_hour(store, hour)
        store.write(hour_key(ATTRIBUTED, hour), table)
        schema = table.schema
        counts["requests"] += table.num_rows
        counts["billable"] += _count(table["is_billable"])
        counts["failed"] += table.num_rows - _count(table["is_success"])
        counts["without_llm_record"] += table.num_rows - _count(table["has_llm_record"])
        counts["billable_tokens"] += _count(table.filter(table["is_billable"])["total_tokens"])
        counts["duplicates"] += _count(table["gateway_records"]) - table.num_rows
        counts["chunk_tokens"] += _count(table["nonzero_later_chunks"])
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": counts["requests"],
            "billable_requests": counts["billable"],
            "failed_requests": counts["failed"],
            "requests_without_llm_record": counts["without_llm_record"],
            "billable_total_tokens": counts["billable_tokens"],
            "duplicate_gateway_rows_removed": counts["duplicates"],
            "later_chunks_with_tokens": counts["chunk_tokens"],
            **({"dagster/column_schema": table_schema(schema)} if schema else {}),
        }
    )


def rollup_day(lake: Lake, day: date) -> pa.Table:
    """Per-product usage of one day from its 24 attributed hours."""
    midnight = datetime(day.year, day.month, day.day, tzinfo=UTC)
    hours = [midnight + n * HOUR for n in range(24)]
    attributed = pa.concat_tables([lake.read(hour_key(ATTRIBUTED, hour)) for hour in hours])
    con = sql.connect()
    try:
        return sql.run_models(con, [DAILY_USAGE_MODEL], {"attributed_requests": attributed}, {"usage_date": day})
    finally:
        con.close()


@dg.asset(
    partitions_def=daily_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    deps=[attributed_requests],
    group_name="usage",
    owners=OWNERS,
    kinds={"duckdb", "parquet"},
    description=(
        "Per-product usage of the day (UTC) by subscription, model, deployment and backend: prompt, "
        "completion and total tokens and calls of billable requests, failed calls, first and last seen."
    ),
)
def daily_product_usage(context: dg.AssetExecutionContext, lake: ObjectStoreResource) -> dg.MaterializeResult:
    store = lake.lake()
    tables = []
    for day in days_in(context.partition_time_window):
        table = rollup_day(store, day)
        store.write(day_key(DAILY_USAGE, day), table)
        tables.append(table)
    usage = pa.concat_tables(tables)
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": usage.num_rows,
            "total_tokens": _count(usage["total_tokens"]),
            "calls": _count(usage["calls"]),
            "failed_calls": _count(usage["failed_calls"]),
            "products": len(pc.unique(usage["product_id"])),
            "dagster/column_schema": table_schema(usage.schema),
            "top_products": markdown_table(top_products(usage)),
        }
    )


def top_products(usage: pa.Table) -> pa.Table:
    by_product = usage.group_by("product_id").aggregate([("total_tokens", "sum"), ("calls", "sum")])
    by_product = by_product.rename_columns(["product_id", "total_tokens", "calls"])
    return by_product.sort_by([("total_tokens", "descending"), ("product_id", "ascending")])
