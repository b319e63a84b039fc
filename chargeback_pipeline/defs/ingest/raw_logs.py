"""Hourly landing of the raw APIM logs and deployment metrics into the lake, one Parquet per hour:
`raw_gateway_logs`, `raw_llm_logs`, `raw_deployment_metrics`.

Each hour's object is replaced whole, so re-landing an hour (a retry, a late-data re-pull) never appends.
Rows the source could not type are landed beside them as `rejected.parquet`, with a reason.

A transient source error (`TransientSourceError`: throttled, unavailable, timed out, unreachable) retries
the step with exponential backoff, each retry logged as a WARNING with the attempt and the time by which
the step gives up if the source stays unavailable; any other error (`PermanentSourceError`: a refused
query, a missing role, a missing export) fails the step at once. An hour the source declared empty on
purpose (`Fetched.declared_empty`) is logged and recorded on its materialization.
"""

import dataclasses
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import dagster as dg
import pyarrow as pa

from chargeback_pipeline.core.periods import HOUR
from chargeback_pipeline.defs.automation.fingerprints import record_hour_content
from chargeback_pipeline.defs.metadata import log_run_totals
from chargeback_pipeline.defs.partitioned_asset import partitioned_asset
from chargeback_pipeline.defs.partitions import Calendar, hours_in
from chargeback_pipeline.defs.resources import ObjectStoreResource
from chargeback_pipeline.defs.source_limits import SOURCE_POOL
from chargeback_pipeline.sources.base import Fetched, TimeWindow, TransientSourceError
from chargeback_pipeline.sources.metric_bounds import bounded
from chargeback_pipeline.sources.resource import LogSourceResource
from chargeback_pipeline.storage import keys
from chargeback_pipeline.storage.lake import Lake
from chargeback_pipeline.storage.schemas import DEPLOYMENT_METRICS_SCHEMA, LLM_LOG_SCHEMA

RAW_GATEWAY_KEY = dg.AssetKey("raw_gateway_logs")
RAW_LLM_KEY = dg.AssetKey("raw_llm_logs")
RAW_METRICS_KEY = dg.AssetKey("raw_deployment_metrics")

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
    """Fetch and land every hour of the run's partition window, each hour's object replaced whole; each
    hour's materialization carries its own row counts and content hash, the run's totals go to its log."""
    per_hour = []
    declared: list[str] = []  # hours the source saw no input for, declared empty on purpose
    hours = hours_in(context.partition_time_window)
    for hour in hours:
        window = window_for_hour(hour)
        try:
            fetched = fetch(window)
        except TransientSourceError as error:
            # The SDK already retried within the call; retry the step later, with exponential backoff.
            # Hours landed before this one stay landed and are simply re-landed (same bytes) next time.
            raise retry_later(context, source, dataset, hour, error) from error
        if fetched.rows.schema != schema:
            raise TypeError(f"{dataset}: source returned {fetched.rows.schema}, expected {schema}")
        digests = (
            lake.write(keys.hour_key(dataset, hour), fetched.rows),
            lake.write(keys.hour_key(dataset, hour, keys.REJECTED_PART), fetched.rejected),
        )
        hour_metadata = {
            "dagster/row_count": fetched.rows.num_rows,
            "rejected_rows": fetched.rejected.num_rows,
            # {reason: rows}, read by `chargeback backfill`'s summary (left out when nothing was rejected)
            "rejected_reasons": dict(Counter(fetched.rejected["reason"].to_pylist())) or None,
            "declared_empty": fetched.declared_empty,  # left out unless the source declared the hour empty
        }
        if fetched.declared_empty:
            declared.append(f"{hour:%Y-%m-%d %H:00}")
        record_hour_content(context, hour, *digests, metadata=hour_metadata)
        per_hour.append({"rows": fetched.rows.num_rows, "rejected": fetched.rejected.num_rows})
    rows = sum(h["rows"] for h in per_hour)
    rejected = sum(h["rejected"] for h in per_hour)
    log_run_totals(context, dataset, len(per_hour), {"rows": rows, "rejected rows": rejected})
    if declared:
        context.log.warning(
            f"{dataset}: {len(declared)} of {len(per_hour)} hours had no input and were declared empty on "
            f"purpose ({declared[0]} .. {declared[-1]}), recorded as `declared_empty` on each hour; the last: "
            f"{fetched.declared_empty}"
        )
    return dg.MaterializeResult()


def retry_later(
    context: dg.AssetExecutionContext, source: LogSourceResource, dataset: str, hour: datetime, error: Exception
) -> Exception:
    """RetryRequested with exponential backoff, logged with the attempt and the time bound; or the error
    itself when no step attempt is left."""
    attempt, attempts = context.retry_number + 1, source.step_retries + 1
    where = (
        f"{dataset}, hour {hour:%Y-%m-%d %H:00}: the source failed transiently (step attempt {attempt} of {attempts})"
    )
    if attempt >= attempts:
        context.log.error(f"{where}; no step retry left, the step fails: {error}")
        return error
    wait = source.step_retry_delay_seconds * 2**context.retry_number
    bound, whole = source.fetch_time_bound_seconds(), source.step_time_bound_seconds()
    if bound is None or whole is None:
        gives_up = ""
    else:
        left = attempts - attempt
        worst = wait * (2**left - 1) + left * bound  # the waits before, and the fetch bound of, each attempt left
        ends = datetime.now(UTC) + timedelta(seconds=worst)
        gives_up = (
            f"; if the source stays unavailable the step fails by {ends:%Y-%m-%d %H:%M:%S}Z, at most {worst:g} s "
            f"from now ({left} more attempt{'s' if left > 1 else ''}, each fetch giving up within {bound:g} s; "
            f"the step's whole bound is {attempts} x {bound:g} s + {whole - attempts * bound:g} s of waits = "
            f"{whole:g} s), later only while the executor or the `{SOURCE_POOL}` pool holds the step back"
        )
    context.log.warning(f"{where}: {error}. Retrying the step in {wait:g} s{gives_up}")
    return dg.RetryRequested(max_retries=source.step_retries, seconds_to_wait=wait)


def _hour_window(hour: datetime) -> TimeWindow:
    return TimeWindow(hour, hour + HOUR)


def _margin_window(source: LogSourceResource) -> Callable[[datetime], TimeWindow]:
    """The hour plus the join margin on both sides (CHARGEBACK_LLM_JOIN_OVERLAP_MINUTES)."""
    margin = timedelta(minutes=source.llm_join_overlap_minutes)
    return lambda hour: TimeWindow(hour - margin, hour + HOUR + margin)


def raw_log_assets(calendar: Calendar) -> list[dg.AssetsDefinition]:
    landed = dict(freshness_policy=HOURLY_FRESHNESS, pool=SOURCE_POOL, group_name="raw", kinds={"azure", "parquet"})

    @partitioned_asset(
        RAW_GATEWAY_KEY,
        calendar.hourly,
        **landed,
        description=(
            "APIM gateway log rows (ApiManagementGatewayLogs) of the hour plus a margin on both sides: which "
            "product and subscription called, success, backend. The hour's own rows are its requests; the "
            "margins give an LLM record logged in the hour the backend of its request across the hour boundary, "
            "so each hour is attributed from its own objects alone. Payload and header columns are never pulled; "
            "with caller keys configured, only their values (CallerId)."
        ),
    )
    def raw_gateway_logs(
        context: dg.AssetExecutionContext, source: LogSourceResource, lake: ObjectStoreResource
    ) -> dg.MaterializeResult:
        fetch = source.source().gateway_logs
        schema = source.caller_identity().gateway_schema()  # GATEWAY_LOG_SCHEMA, plus CallerId when configured
        return land_hours(context, source, lake.lake(), keys.RAW_GATEWAY, schema, fetch, _margin_window(source))

    @partitioned_asset(
        RAW_LLM_KEY,
        calendar.hourly,
        **landed,
        description=(
            "APIM LLM log rows (ApiManagementGatewayLlmLog) of the hour plus a margin on both sides, so a "
            "request's LLM record logged just across the hour boundary is still joined. Token counts, model, "
            "deployment; request and response messages are never pulled."
        ),
    )
    def raw_llm_logs(
        context: dg.AssetExecutionContext, source: LogSourceResource, lake: ObjectStoreResource
    ) -> dg.MaterializeResult:
        fetch = source.source().llm_logs
        return land_hours(context, source, lake.lake(), keys.RAW_LLM, LLM_LOG_SCHEMA, fetch, _margin_window(source))

    @partitioned_asset(
        RAW_METRICS_KEY,
        calendar.hourly,
        **landed,
        description=(
            "Azure Monitor token metrics of the Azure OpenAI deployments for the hour (ProcessedPromptTokens, "
            "GeneratedTokens; Total by ModelDeploymentName): what the deployments themselves counted. PTU "
            "deployments add AzureOpenAIProvisionedManagedUtilizationV2 (the hour's maximum percent) where the "
            "source has it, for ptu_utilization."
        ),
    )
    def raw_deployment_metrics(
        context: dg.AssetExecutionContext, source: LogSourceResource, lake: ObjectStoreResource
    ) -> dg.MaterializeResult:
        deployment_metrics = source.source().deployment_metrics

        def fetch(window: TimeWindow) -> Fetched:  # every source's metric values bounded the same way
            fetched = deployment_metrics(window)
            rows, rejected = bounded(fetched.rows, fetched.rejected, keys.RAW_METRICS)
            return dataclasses.replace(fetched, rows=rows, rejected=rejected)

        return land_hours(
            context, source, lake.lake(), keys.RAW_METRICS, DEPLOYMENT_METRICS_SCHEMA, fetch, _hour_window
        )

    return [raw_gateway_logs, raw_llm_logs, raw_deployment_metrics]
