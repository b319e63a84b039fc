"""`deployment_reconciliation` (hourly): per deployment and hour, the tokens APIM logged against the
tokens the deployment itself counted (Azure Monitor), judged by the thresholds."""

import dagster as dg

from chargeback_pipeline.core.reconciliation import hour_period, judge, reconcile_hour, with_period
from chargeback_pipeline.defs import partition_checks
from chargeback_pipeline.defs.automation.fingerprints import record_hour_content
from chargeback_pipeline.defs.metadata import log_run_totals
from chargeback_pipeline.defs.partitioned_asset import partitioned_asset
from chargeback_pipeline.defs.partitions import Calendar, hour_partition_key, hours_in
from chargeback_pipeline.defs.reconciliation import checks
from chargeback_pipeline.defs.resources import (
    DataQualityPolicy,
    ObjectStoreResource,
    PricingResource,
    SqlEngineResource,
)
from chargeback_pipeline.sources.resource import LogSourceResource
from chargeback_pipeline.storage import keys

HOURLY_RECONCILIATION_KEY = dg.AssetKey("deployment_reconciliation")


def reconcile_hours(
    context: dg.AssetExecutionContext,
    lake: ObjectStoreResource,
    policy: DataQualityPolicy,
    pricing: PricingResource,
    source: LogSourceResource,
    sql_engine: SqlEngineResource,
):
    store, topology = lake.lake(), pricing.topology()
    judged_by_hour: dict[str, list[dict]] = {}
    with sql_engine.database() as database:
        for hour in hours_in(context.partition_time_window):
            table = reconcile_hour(store, hour, policy.known_deployments, topology, database)
            digest = store.write(keys.hour_key(keys.HOURLY_RECONCILIATION, hour), table)
            judged = with_period(judge(table, policy), hour_period)
            judged_by_hour[hour_partition_key(hour)] = judged
            record_hour_content(
                context, hour, digest, metadata={"dagster/row_count": table.num_rows, **checks.token_totals(judged)}
            )
    everything = [row for rows in judged_by_hour.values() for row in rows]
    log_run_totals(context, "deployment_reconciliation", len(judged_by_hour), checks.token_totals(everything))
    yield dg.MaterializeResult()
    off = source.reconciliation_off_reason()
    yield from partition_checks.evaluations(
        context,
        [
            (
                partition,
                checks.not_reconciled(HOURLY_RECONCILIATION_KEY, off, gates_publication=False)
                if off
                else checks.reconciliation(HOURLY_RECONCILIATION_KEY, hours=judged, days=[], gates_publication=False),
            )
            for partition, judged in judged_by_hour.items()
        ],
    )


def deployment_reconciliation_asset(calendar: Calendar) -> dg.AssetsDefinition:
    @partitioned_asset(
        HOURLY_RECONCILIATION_KEY,
        calendar.hourly,
        deps=["attributed_requests", "raw_deployment_metrics"],
        group_name="reconciliation",
        kinds={"duckdb", "parquet"},
        description=(
            "Per backend (Azure OpenAI resource), deployment and hour: metric tokens (Azure Monitor "
            "ProcessedPromptTokens / GeneratedTokens) against tokens APIM logged, bucketed by the LLM record's "
            "own time (the attribution's de-duplicated LLM records, every logged request counted). The gap is "
            "traffic that bypassed APIM or was not logged."
        ),
        checks={
            checks.RECONCILES: (
                checks.NOT_A_GATE
                + "Per deployment in the hour, unexplained unattributed tokens stay under the warning and blocking "
                "levels."
            ),
        },
    )
    def deployment_reconciliation(
        context: dg.AssetExecutionContext,
        lake: ObjectStoreResource,
        policy: DataQualityPolicy,
        pricing: PricingResource,
        source: LogSourceResource,
        sql_engine: SqlEngineResource,
    ):
        yield from reconcile_hours(context, lake, policy, pricing, source, sql_engine)

    return deployment_reconciliation
