"""`attributed_requests` and `quarantined_records` (one multi-asset, hourly): each hour's APIM requests
joined to their LLM records by the engine (`core.attribution`), the untrusted rows quarantined, with the
attribution's checks."""

from collections import Counter
from datetime import timedelta

import dagster as dg

from chargeback_pipeline.core.attribution import AttributedHour, attribute_hour
from chargeback_pipeline.defs.attribution import checks
from chargeback_pipeline.defs.automation.fingerprints import record_hour_content, record_run_summary
from chargeback_pipeline.defs.metadata import OWNERS, table_schema
from chargeback_pipeline.defs.partitions import Calendar, hours_in
from chargeback_pipeline.defs.resources import DataQualityPolicy, ObjectStoreResource
from chargeback_pipeline.sources.resource import LogSourceResource
from chargeback_pipeline.storage import sql

ATTRIBUTED_KEY = dg.AssetKey("attributed_requests")
QUARANTINE_KEY = dg.AssetKey("quarantined_records")
RAW_LOGS = [dg.AssetKey("raw_gateway_logs"), dg.AssetKey("raw_llm_logs")]


def completeness_row(done: AttributedHour) -> dict:
    gaps = done.gaps
    return {
        "hour": f"{done.hour:%Y-%m-%d %H:00}",
        "core_llm_requests": gaps["core_llm_requests"],
        "without_gateway_row": gaps["core_llm_requests_without_gateway_row"],
        "without_gateway_percent": checks.percent(
            gaps["core_llm_requests_without_gateway_row"], gaps["core_llm_requests"]
        ),
    }


def attribute_run(
    context: dg.AssetExecutionContext, lake: ObjectStoreResource, source: LogSourceResource, policy: DataQualityPolicy
):
    """Attribute every hour of the run's window; record each hour's content and counts on its own event."""
    store = lake.lake()
    margin = timedelta(minutes=source.llm_join_overlap_minutes)
    with sql.shared_database() as database:
        attributed_hours = [
            attribute_hour(store, hour, policy.known_deployments, margin, database)
            for hour in hours_in(context.partition_time_window)
        ]
    totals, reasons = Counter(), Counter()
    for done in attributed_hours:
        record_hour_content(
            context,
            done.hour,
            done.attributed_digest,
            done.logged_tokens_digest,
            asset_key=ATTRIBUTED_KEY,
            metadata={"dagster/row_count": done.measures["requests"]},
        )
        record_hour_content(
            context,
            done.hour,
            done.quarantined_digest,
            asset_key=QUARANTINE_KEY,
            metadata={"dagster/row_count": done.quarantined_rows},
        )
        totals.update(done.measures, quarantined=done.quarantined_rows)
        reasons.update(done.reasons)
    hours, last = [done.hour for done in attributed_hours], attributed_hours[-1]
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
            "dagster/column_schema": table_schema(last.schema),
        },
        asset_key=ATTRIBUTED_KEY,
    )
    record_run_summary(
        context,
        hours,
        {
            "run_rows": totals["quarantined"],
            "by_reason": dg.MetadataValue.json(dict(sorted(reasons.items()))),
            "dagster/column_schema": table_schema(last.quarantine_schema),
        },
        asset_key=QUARANTINE_KEY,
    )
    yield dg.MaterializeResult(asset_key=ATTRIBUTED_KEY)
    yield dg.MaterializeResult(asset_key=QUARANTINE_KEY)
    yield checks.uniqueness(ATTRIBUTED_KEY, totals["requests"], totals["distinct_ids"])
    yield checks.sequence_zero_tokens(ATTRIBUTED_KEY, totals["chunk_tokens"], totals["chunked"])
    yield checks.gateway_completeness(
        ATTRIBUTED_KEY,
        [completeness_row(done) for done in attributed_hours],
        policy.orphan_llm_max_percent,
        policy.gateway_completeness_min_requests,
    )
    yield checks.quarantine_rate(
        ATTRIBUTED_KEY, totals["quarantined"], totals["requests"], dict(reasons), policy.quarantine_max_percent
    )


def attributed_requests_asset(calendar: Calendar) -> dg.AssetsDefinition:
    @dg.multi_asset(
        name="attributed_requests",
        specs=[
            dg.AssetSpec(
                ATTRIBUTED_KEY,
                deps=RAW_LOGS,
                group_name="usage",
                owners=OWNERS,
                kinds={"duckdb", "parquet"},
                description=(
                    "One row per APIM request of the hour: the deduplicated gateway row joined on CorrelationId "
                    "to its LLM request (tokens from SequenceNumber 0 only), with its product, subscription, "
                    "model, deployment and backend. Billable = successful and has an LLM record."
                ),
            ),
            dg.AssetSpec(
                QUARANTINE_KEY,
                deps=RAW_LOGS,
                group_name="usage",
                owners=OWNERS,
                kinds={"duckdb", "parquet"},
                description=(
                    "Raw rows of the hour that could not be trusted (missing or malformed CorrelationId, "
                    "unparseable values, negative tokens, unknown deployment), with the reason. Never "
                    "attributed, never silently dropped: counted here and judged by the quarantine-rate check."
                ),
            ),
        ],
        check_specs=[
            dg.AssetCheckSpec(
                checks.UNIQUE_CORRELATION, asset=ATTRIBUTED_KEY, description="One row per CorrelationId."
            ),
            dg.AssetCheckSpec(
                checks.SEQUENCE_ZERO_TOKENS, asset=ATTRIBUTED_KEY, description="Later chunks carry no tokens."
            ),
            dg.AssetCheckSpec(
                checks.GATEWAY_COMPLETE,
                asset=ATTRIBUTED_KEY,
                description="LLM requests in the core of each hour have their gateway row (no missing gateway data).",
            ),
            dg.AssetCheckSpec(
                checks.QUARANTINE_RATE,
                asset=ATTRIBUTED_KEY,
                description="Quarantined rows stay under the configured rate.",
            ),
        ],
        partitions_def=calendar.hourly,
        backfill_policy=dg.BackfillPolicy.single_run(),
    )
    def attributed_requests(
        context: dg.AssetExecutionContext,
        lake: ObjectStoreResource,
        source: LogSourceResource,
        policy: DataQualityPolicy,
    ):
        yield from attribute_run(context, lake, source, policy)

    return attributed_requests
