"""`attributed_requests` and `quarantined_records` (one multi-asset, hourly): each hour's APIM requests
joined to their LLM records by the engine (`core.attribution`), the untrusted rows quarantined, with the
attribution's checks."""

from collections import Counter
from datetime import timedelta

import dagster as dg

from chargeback_pipeline.core.attribution import AttributedHour, attribute_hours, hour_sets
from chargeback_pipeline.defs import partition_checks
from chargeback_pipeline.defs.attribution import checks
from chargeback_pipeline.defs.automation.fingerprints import record_hour_content
from chargeback_pipeline.defs.ingest.raw_logs import RAW_GATEWAY_KEY, RAW_LLM_KEY
from chargeback_pipeline.defs.metadata import log_run_totals, markdown_rows
from chargeback_pipeline.defs.partitioned_asset import partitioned_multi_asset
from chargeback_pipeline.defs.partitions import Calendar, hour_partition_key, hours_in
from chargeback_pipeline.defs.resources import DataQualityPolicy, ObjectStoreResource, SqlEngineResource
from chargeback_pipeline.sources.resource import LogSourceResource

ATTRIBUTED_KEY = dg.AssetKey("attributed_requests")
QUARANTINE_KEY = dg.AssetKey("quarantined_records")
RAW_LOGS = [RAW_GATEWAY_KEY, RAW_LLM_KEY]


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


def hour_checks(done: AttributedHour, policy: DataQualityPolicy) -> list[dg.AssetCheckResult]:
    """The attribution's checks judged on one hour's own numbers."""
    measures = done.measures
    return [
        checks.uniqueness(ATTRIBUTED_KEY, measures["requests"], measures["distinct_ids"]),
        checks.sequence_zero_tokens(ATTRIBUTED_KEY, measures["chunk_tokens"], measures["chunked"]),
        checks.gateway_completeness(
            ATTRIBUTED_KEY,
            [completeness_row(done)],
            policy.orphan_llm_max_percent,
            policy.gateway_completeness_min_requests,
        ),
        checks.quarantine_rate(
            ATTRIBUTED_KEY,
            done.quarantined_rows,
            measures["requests"],
            dict(sorted(done.reasons.items())),
            policy.quarantine_max_percent,
        ),
    ]


def hour_metadata(done: AttributedHour) -> dict:
    """The hour's own numbers, on its materialization of attributed_requests."""
    measures = done.measures
    return {
        "dagster/row_count": measures["requests"],
        "billable_requests": measures["billable"],
        "failed_requests": measures["failed"],
        "requests_without_llm_record": measures["without_llm_record"],
        "billable_total_tokens": measures["billable_tokens"],
        "duplicate_gateway_rows_removed": measures["duplicates"],
        "later_chunks_with_tokens": measures["chunk_tokens"],
    }


def attribute_run(
    context: dg.AssetExecutionContext,
    lake: ObjectStoreResource,
    source: LogSourceResource,
    policy: DataQualityPolicy,
    sql_engine: SqlEngineResource,
):
    """Attribute every hour of the run's window (consecutive hours together, in sets); record each hour's
    content and numbers on its own event, and judge the checks hour by hour."""
    store = lake.lake()
    margin = timedelta(minutes=source.llm_join_overlap_minutes)
    with sql_engine.database() as database:
        # Consecutive hours in sets, each set in one pass (core.attribution.attribute_hours).
        attributed_hours = [
            done
            for hours in hour_sets(store, hours_in(context.partition_time_window))
            for done in attribute_hours(store, hours, policy.known_deployments, margin, database)
        ]
    totals = Counter()
    for done in attributed_hours:
        record_hour_content(
            context,
            done.hour,
            done.attributed_digest,
            done.logged_tokens_digest,
            asset_key=ATTRIBUTED_KEY,
            metadata=hour_metadata(done),
        )
        record_hour_content(
            context,
            done.hour,
            done.quarantined_digest,
            asset_key=QUARANTINE_KEY,
            metadata={
                "dagster/row_count": done.quarantined_rows,
                "by_reason": dg.MetadataValue.json(dict(sorted(done.reasons.items()))) if done.reasons else None,
                # The same counts as a table the UI shows as it is (a reason per row, largest first).
                "counts_by_reason": markdown_rows(
                    [{"reason": r, "rows": n} for r, n in sorted(done.reasons.items(), key=lambda i: (-i[1], i[0]))],
                    limit=30,
                    empty="_no row quarantined_",
                ),
            },
        )
        totals.update(done.measures, quarantined=done.quarantined_rows)
    log_run_totals(
        context,
        "attributed_requests",
        len(attributed_hours),
        {
            "requests": totals["requests"],
            "billable requests": totals["billable"],
            "billable tokens": totals["billable_tokens"],
            "quarantined rows": totals["quarantined"],
        },
    )
    yield dg.MaterializeResult(asset_key=ATTRIBUTED_KEY)
    yield dg.MaterializeResult(asset_key=QUARANTINE_KEY)
    yield from partition_checks.evaluations(
        context,
        [(hour_partition_key(done.hour), check) for done in attributed_hours for check in hour_checks(done, policy)],
    )


def attributed_requests_asset(calendar: Calendar) -> dg.AssetsDefinition:
    @partitioned_multi_asset(
        "attributed_requests",
        calendar.hourly,
        [
            dg.AssetSpec(
                ATTRIBUTED_KEY,
                deps=RAW_LOGS,
                group_name="usage",
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
                kinds={"duckdb", "parquet"},
                description=(
                    "Raw rows of the hour that could not be trusted (missing or malformed CorrelationId, "
                    "unparseable values, negative tokens, unknown deployment), with the reason. Never "
                    "attributed, never silently dropped: counted here and judged by the quarantine-rate check."
                ),
            ),
        ],
        checked=ATTRIBUTED_KEY,
        checks={
            checks.UNIQUE_CORRELATION: "One row per CorrelationId in the hour.",
            checks.SEQUENCE_ZERO_TOKENS: "Later chunks of the hour's LLM records carry no tokens.",
            checks.GATEWAY_COMPLETE: (
                "LLM requests in the core of the hour have their gateway row (no missing gateway data)."
            ),
            checks.QUARANTINE_RATE: "The hour's quarantined rows stay under the configured rate.",
        },
    )
    def attributed_requests(
        context: dg.AssetExecutionContext,
        lake: ObjectStoreResource,
        source: LogSourceResource,
        policy: DataQualityPolicy,
        sql_engine: SqlEngineResource,
    ):
        yield from attribute_run(context, lake, source, policy, sql_engine)

    return attributed_requests
