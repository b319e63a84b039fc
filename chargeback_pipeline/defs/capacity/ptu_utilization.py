"""`ptu_utilization` (hourly): per PTU deployment, weighted tokens served against capacity, spillover to
pay-as-you-go, 429s from the PTU backend, and Azure Monitor's own utilisation metric where present."""

import dagster as dg
import pyarrow.compute as pc

from chargeback_pipeline.core.capacity.utilisation import azure_utilization, hour_utilisation, ptu_sizings
from chargeback_pipeline.defs.automation.fingerprints import record_hour_content
from chargeback_pipeline.defs.metadata import log_run_totals, markdown_table, record_partition
from chargeback_pipeline.defs.partitioned_asset import partitioned_asset
from chargeback_pipeline.defs.partitions import Calendar, hour_partition_key, hours_in
from chargeback_pipeline.defs.resources import ObjectStoreResource, PricingResource, SqlEngineResource
from chargeback_pipeline.storage import keys, sql
from chargeback_pipeline.storage.schemas import DEPLOYMENT_METRICS_SCHEMA, METRIC_PTU_UTILIZATION

PTU_UTILIZATION_KEY = dg.AssetKey("ptu_utilization")
TRAFFIC_MODEL = "marts/fct_hourly_backend_traffic"
MINUTE_TRAFFIC_MODEL = "marts/fct_minute_backend_traffic"
PREVIEW_COLUMNS = [
    "backend_id",
    "deployment_name",
    "ptu_count",
    "utilization_percent",
    "azure_utilization_percent",
    "azure_p95_utilization_percent",
    "azure_saturated_minutes",
    "max_minute_weighted_tokens",
    "spillover_requests",
    "throttled_requests",
    "saturated",
]


def _hour_numbers(table) -> dict[str, object]:
    """The hour's numbers, one value each, so the UI plots them over partitions."""
    numbers: dict[str, object] = {
        "dagster/row_count": table.num_rows,
        "max_utilization_percent": pc.max(table["utilization_percent"]).as_py() or 0.0,
        "saturated_deployments": sum(table["saturated"].to_pylist()),
        "spillover_requests": sum(table["spillover_requests"].to_pylist()),
        "throttled_requests": sum(table["throttled_requests"].to_pylist()),
        "served_weighted_tokens": sum(table["served_weighted_tokens"].to_pylist()),
        "azure_saturated_minutes": sum(m or 0 for m in table["azure_saturated_minutes"].to_pylist()),
        "demand_weighted_tokens": sum(table["demand_weighted_tokens"].to_pylist()),
    }
    for row in table.to_pylist():
        label = f"{row['backend_id']}/{row['deployment_name']}"
        numbers[f"utilization_percent[{label}]"] = row["utilization_percent"]
        numbers[f"max_minute_weighted_tokens[{label}]"] = row["max_minute_weighted_tokens"]
        if row["azure_utilization_percent"] is not None:
            numbers[f"azure_utilization_percent[{label}]"] = row["azure_utilization_percent"]
            numbers[f"azure_p95_utilization_percent[{label}]"] = row["azure_p95_utilization_percent"]
    return numbers


def measure_hours(
    context: dg.AssetExecutionContext,
    lake: ObjectStoreResource,
    pricing: PricingResource,
    sql_engine: SqlEngineResource,
):
    if not pricing.path:
        # Usage-only mode (no pricing file) is supported: the hourly job must still land and attribute.
        yield from _without_pricing(context)
        return
    store, prices = lake.lake(), pricing.pricing()
    totals = {"saturated_deployment_hours": 0, "spillover_requests": 0, "throttled_requests": 0}
    hours = hours_in(context.partition_time_window)
    with sql_engine.database() as database:
        for hour in hours:
            sizings = ptu_sizings(prices, hour, pricing.path)
            con = sql.connect(database)
            try:
                relations = {"attributed_requests": store.relation(keys.hour_key(keys.ATTRIBUTED, hour))}
                traffic = sql.run_models(con, [TRAFFIC_MODEL], relations=relations, params={}).to_pylist()
                minute_traffic = sql.run_models(con, [MINUTE_TRAFFIC_MODEL], relations=relations, params={}).to_pylist()
            finally:
                con.close()
            metrics = store.read(keys.hour_key(keys.RAW_METRICS, hour), DEPLOYMENT_METRICS_SCHEMA)
            utilisation_rows = metrics.filter(pc.equal(metrics["MetricName"], METRIC_PTU_UTILIZATION)).to_pylist()
            azure = azure_utilization(utilisation_rows, sizings)
            table = hour_utilisation(hour, sizings, traffic, azure, minute_traffic)
            digest = store.write(keys.hour_key(keys.PTU_UTILIZATION, hour), table)
            numbers = _hour_numbers(table)
            saturated = table.filter(table["saturated"])
            if saturated.num_rows:
                context.log.info(
                    f"{hour:%Y-%m-%d %H:00} PTU saturated: "
                    + ", ".join(
                        f"{r['backend_id']}/{r['deployment_name']} {r['utilization_percent']}% "
                        f"(Azure {r['azure_utilization_percent']}%), {r['spillover_requests']} spilled, "
                        f"{r['throttled_requests']} 429s"
                        for r in saturated.to_pylist()
                    )
                )
            record_hour_content(
                context,
                hour,
                digest,
                metadata={**numbers, "ptu_deployments": markdown_table(table.select(PREVIEW_COLUMNS))},
            )
            totals["saturated_deployment_hours"] += numbers["saturated_deployments"]
            totals["spillover_requests"] += numbers["spillover_requests"]
            totals["throttled_requests"] += numbers["throttled_requests"]
    log_run_totals(context, "ptu_utilization", len(hours), totals)
    yield dg.MaterializeResult()


def _without_pricing(context: dg.AssetExecutionContext):
    """No pricing file: no PTU deployment is known, so nothing is measured; each hour says why."""
    hours = hours_in(context.partition_time_window)
    reason = "no pricing file (CHARGEBACK_PRICING_FILE): no PTU deployment to measure"
    context.log.warning(f"ptu_utilization: {reason}")
    for hour in hours:
        record_partition(context, hour_partition_key(hour), {"dagster/row_count": 0, "skipped": reason})
    yield dg.MaterializeResult()


def ptu_utilization_asset(calendar: Calendar) -> dg.AssetsDefinition:
    @partitioned_asset(
        PTU_UTILIZATION_KEY,
        calendar.hourly,
        deps=["attributed_requests", "raw_deployment_metrics"],
        group_name="capacity",
        kinds={"duckdb", "parquet"},
        description=(
            "Per PTU deployment (pricing file) and hour: weighted tokens served (prompt + output_token_weight x "
            "completion) against capacity (ptu_count x ptu_input_tokens_per_minute x 60), the requests that "
            "spilled to its pay-as-you-go twin (same deployment name on a paygo backend), the 429s the PTU "
            "backend answered, and Azure Monitor's AzureOpenAIProvisionedManagedUtilizationV2 per minute (the "
            "hour's maximum, p95 and p99 of minutes, minutes at 100 %) where the source has it, beside the served "
            "weighted tokens per minute and each minute's demand. `saturated`: capacity used, or demand turned away."
        ),
    )
    def ptu_utilization(
        context: dg.AssetExecutionContext,
        lake: ObjectStoreResource,
        pricing: PricingResource,
        sql_engine: SqlEngineResource,
    ):
        yield from measure_hours(context, lake, pricing, sql_engine)

    return ptu_utilization
