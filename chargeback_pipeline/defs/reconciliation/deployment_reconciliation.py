"""`deployment_reconciliation` (hourly): per deployment and hour, the tokens APIM logged against the
tokens the deployment itself counted (Azure Monitor), judged by the thresholds."""

import dagster as dg

from chargeback_pipeline.core.reconciliation import hour_period, judge, reconcile_hour, with_period
from chargeback_pipeline.defs.automation.fingerprints import record_hour_content, record_run_summary
from chargeback_pipeline.defs.metadata import OWNERS, table_schema
from chargeback_pipeline.defs.partitions import Calendar, hours_in
from chargeback_pipeline.defs.reconciliation import checks
from chargeback_pipeline.defs.resources import DataQualityPolicy, ObjectStoreResource
from chargeback_pipeline.storage import keys, sql

HOURLY_RECONCILIATION_KEY = dg.AssetKey("deployment_reconciliation")


def reconcile_hours(context: dg.AssetExecutionContext, lake: ObjectStoreResource, policy: DataQualityPolicy):
    store = lake.lake()
    judged = []
    with sql.shared_database() as database:
        hours = hours_in(context.partition_time_window)
        for hour in hours:
            table = reconcile_hour(store, hour, policy.known_deployments, database)
            digest = store.write(keys.hour_key(keys.HOURLY_RECONCILIATION, hour), table)
            record_hour_content(context, hour, digest, metadata={"dagster/row_count": table.num_rows})
            judged += with_period(judge(table, policy), hour_period)
    record_run_summary(
        context,
        hours,
        {
            "run_rows": len(judged),
            "metric_tokens": sum(r["metric_tokens"] for r in judged),
            "logged_tokens": sum(r["logged_tokens"] for r in judged),
            "unattributed_tokens": sum(r["unattributed_tokens"] for r in judged),
            "dagster/column_schema": table_schema(table.schema),
        },
    )
    yield dg.MaterializeResult()
    yield checks.reconciliation(HOURLY_RECONCILIATION_KEY, hours=judged, days=[], blocking=False)


def deployment_reconciliation_asset(calendar: Calendar) -> dg.AssetsDefinition:
    @dg.asset(
        partitions_def=calendar.hourly,
        backfill_policy=dg.BackfillPolicy.single_run(),
        deps=["attributed_requests", "raw_deployment_metrics"],
        group_name="reconciliation",
        owners=OWNERS,
        kinds={"duckdb", "parquet"},
        description=(
            "Per deployment and hour: metric tokens (Azure Monitor ProcessedPromptTokens / GeneratedTokens) "
            "against tokens APIM logged, bucketed by the LLM record's own time (the attribution's de-duplicated "
            "LLM records, every logged request counted). The gap is traffic that bypassed APIM or was not logged."
        ),
        check_specs=[
            dg.AssetCheckSpec(
                checks.RECONCILES,
                asset=HOURLY_RECONCILIATION_KEY,
                description="Per deployment-hour, unattributed tokens stay under the warning and blocking levels.",
            )
        ],
    )
    def deployment_reconciliation(
        context: dg.AssetExecutionContext, lake: ObjectStoreResource, policy: DataQualityPolicy
    ):
        yield from reconcile_hours(context, lake, policy)

    return deployment_reconciliation
