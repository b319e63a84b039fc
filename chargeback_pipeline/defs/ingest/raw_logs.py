"""Hourly landing of the raw APIM logs and deployment metrics into the lake, one Parquet per hour:
`raw_gateway_logs`, `raw_llm_logs`, `raw_deployment_metrics`.

Each hour's object is replaced whole, so re-landing an hour (a retry, a late-data re-pull) never appends.
Rows the source could not type are landed beside them as `rejected.parquet`, with a reason.
"""

from collections.abc import Callable
from datetime import datetime, timedelta

import dagster as dg
import pyarrow as pa

from chargeback_pipeline.core.periods import HOUR
from chargeback_pipeline.defs.automation.fingerprints import record_hour_content, record_run_summary
from chargeback_pipeline.defs.metadata import OWNERS, markdown_table, table_schema
from chargeback_pipeline.defs.partitions import Calendar, hours_in
from chargeback_pipeline.defs.resources import ObjectStoreResource
from chargeback_pipeline.defs.source_limits import SOURCE_POOL
from chargeback_pipeline.sources.base import Fetched, TimeWindow, TransientSourceError
from chargeback_pipeline.sources.resource import LogSourceResource
from chargeback_pipeline.storage import keys
from chargeback_pipeline.storage.lake import Lake
from chargeback_pipeline.storage.schemas import DEPLOYMENT_METRICS_SCHEMA, GATEWAY_LOG_SCHEMA, LLM_LOG_SCHEMA

# The hourly schedule lands hour H at H+1:20; an hour not landed two hours after it ends is late,
# three hours after it is failing (the UI's freshness status flags both).
HOURLY_FRESHNESS = dg.FreshnessPolicy.time_window(fail_window=timedelta(hours=3), warn_window=timedelta(hours=2))


def land_hours(
    context: dg.AssetExecutionContext,
    source: LogSourceResource,
    lake: Lake,
    dataset: str,
    schema: pa.Schema,
    fetch: Callable[[TimeWindow], Fetched],
    window_for_hour: Callable[[datetime], TimeWindow],
) -> dg.MaterializeResult:
    """Fetch and land every hour of the run's partition window, each hour's object replaced whole."""
    per_hour = []
    hours = hours_in(context.partition_time_window)
    for hour in hours:
        window = window_for_hour(hour)
        try:
            fetched = fetch(window)
        except TransientSourceError as error:
            # The SDK already retried within the call; retry the step later, with exponential backoff.
            # Hours landed before this one stay landed and are simply re-landed (same bytes) next time.
            raise dg.RetryRequested(
                max_retries=source.step_retries,
                seconds_to_wait=source.step_retry_delay_seconds * 2**context.retry_number,
            ) from error
        if fetched.rows.schema != schema:
            raise TypeError(f"{dataset}: source returned {fetched.rows.schema}, expected {schema}")
        digests = (
            lake.write(keys.hour_key(dataset, hour), fetched.rows),
            lake.write(keys.hour_key(dataset, hour, keys.REJECTED_PART), fetched.rejected),
        )
        hour_metadata = {"dagster/row_count": fetched.rows.num_rows, "rejected_rows": fetched.rejected.num_rows}
        record_hour_content(context, hour, *digests, metadata=hour_metadata)
        per_hour.append(
            {"hour": f"{hour:%Y-%m-%d %H:00}", "rows": fetched.rows.num_rows, "rejected": fetched.rejected.num_rows}
        )
    rows = sum(h["rows"] for h in per_hour)
    rejected = sum(h["rejected"] for h in per_hour)
    context.log.info(f"{dataset}: {len(per_hour)} hours, {rows} rows, {rejected} rejected")
    record_run_summary(
        context,
        hours,
        {
            "run_rows": rows,
            "run_rejected_rows": rejected,
            "hours": len(per_hour),
            "lake_prefix": dataset,
            "dagster/column_schema": table_schema(schema),
            "rows_per_hour": markdown_table(pa.Table.from_pylist(per_hour), limit=24),
        },
    )
    return dg.MaterializeResult()


def _hour_window(hour: datetime) -> TimeWindow:
    return TimeWindow(hour, hour + HOUR)


def raw_log_assets(calendar: Calendar) -> list[dg.AssetsDefinition]:
    common = dict(
        partitions_def=calendar.hourly,
        freshness_policy=HOURLY_FRESHNESS,
        pool=SOURCE_POOL,
        backfill_policy=dg.BackfillPolicy.single_run(),
        group_name="raw",
        owners=OWNERS,
        kinds={"azure", "parquet"},
    )

    @dg.asset(
        **common,
        description=(
            "APIM gateway log rows (ApiManagementGatewayLogs) whose TimeGenerated falls in the hour: which "
            "product and subscription called, success, backend. Payload and header columns are never pulled."
        ),
    )
    def raw_gateway_logs(
        context: dg.AssetExecutionContext, source: LogSourceResource, lake: ObjectStoreResource
    ) -> dg.MaterializeResult:
        fetch = source.source().gateway_logs
        return land_hours(context, source, lake.lake(), keys.RAW_GATEWAY, GATEWAY_LOG_SCHEMA, fetch, _hour_window)

    @dg.asset(
        **common,
        description=(
            "APIM LLM log rows (ApiManagementGatewayLlmLog) of the hour plus a margin on both sides, so a "
            "request's LLM record logged just across the hour boundary is still joined. Token counts, model, "
            "deployment; request and response messages are never pulled."
        ),
    )
    def raw_llm_logs(
        context: dg.AssetExecutionContext, source: LogSourceResource, lake: ObjectStoreResource
    ) -> dg.MaterializeResult:
        margin = timedelta(minutes=source.llm_join_overlap_minutes)
        return land_hours(
            context,
            source,
            lake.lake(),
            keys.RAW_LLM,
            LLM_LOG_SCHEMA,
            source.source().llm_logs,
            lambda hour: TimeWindow(hour - margin, hour + HOUR + margin),
        )

    @dg.asset(
        **common,
        description=(
            "Azure Monitor token metrics of the Azure OpenAI deployments for the hour (ProcessedPromptTokens, "
            "GeneratedTokens; Total by ModelDeploymentName): what the deployments themselves counted."
        ),
    )
    def raw_deployment_metrics(
        context: dg.AssetExecutionContext, source: LogSourceResource, lake: ObjectStoreResource
    ) -> dg.MaterializeResult:
        fetch = source.source().deployment_metrics
        return land_hours(
            context, source, lake.lake(), keys.RAW_METRICS, DEPLOYMENT_METRICS_SCHEMA, fetch, _hour_window
        )

    return [raw_gateway_logs, raw_llm_logs, raw_deployment_metrics]
