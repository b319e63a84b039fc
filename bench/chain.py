"""Child side of the whole published chain: a landed day -> every file published for that day and its month.

Three ranged Dagster runs, as `chargeback backfill` makes them (`cli/backfill.py`), on the definitions
`definitions.build_definitions` builds from settings, with the raw landing left out (the day is already
landed, as for the transform): the hourly job's other assets over the day's 24 hours (attribution,
reconciliation, PTU utilisation), the daily job over the day (rollup, reconciliation, usage report,
chargeback priced with the example pricing file, FOCUS export and its FinOps hubs copy, budgets, anomalies,
audit, the day's publication decision) and the monthly job over its month (statements, PTU rightsizing,
the month's publication). The published files are counted, so a chain that published nothing shows.
"""

import os
import time
from datetime import date
from pathlib import Path

from bench.common import paths
from bench.dagster_runs import instance_for, run_breakdown

REPO = Path(__file__).resolve().parent.parent
# The examples the repository ships: a price list (an estimate, not what Azure bills) and budgets.
EXAMPLE_PRICING = REPO / "pricing.example.yaml"
EXAMPLE_BUDGETS = REPO / "budgets.example.yaml"
RAW_LANDING = ("raw_gateway_logs", "raw_llm_logs", "raw_deployment_metrics")


def published_chain(config: dict, day: date) -> dict:
    import dagster as dg

    from chargeback_pipeline.core.periods import day_hours
    from chargeback_pipeline.definitions import build_resources
    from chargeback_pipeline.defs.assets import build_assets
    from chargeback_pipeline.defs.partitions import (
        RANGE_END_TAG,
        RANGE_START_TAG,
        Calendar,
        day_partition_key,
        hour_partition_key,
        month_partition_key,
    )
    from chargeback_pipeline.settings import load_settings

    where = paths(config)
    hubs = Path(config["workdir"]) / "hubs"
    # The simulated source's own setting (this child's environment only); it is not asked for rows here.
    os.environ["CHARGEBACK_SIMULATED_REQUESTS_PER_HOUR"] = str(config["requests_per_hour"])
    settings = load_settings(
        lake_dir=where["lake"],
        output_dir=where["reports"],
        pricing_file=EXAMPLE_PRICING,
        budgets_file=EXAMPLE_BUDGETS,
        finops_hubs_dir=hubs,
        **({"duckdb_memory_limit": config["duckdb_memory_limit"]} if config.get("duckdb_memory_limit") else {}),
    )
    assets = build_assets(Calendar.starting(settings.partitions_start))
    resources = build_resources(settings)
    instance = instance_for(config)

    def keys_of(kind) -> list:
        return [
            key
            for asset in assets
            if isinstance(asset.partitions_def, kind)
            for key in asset.keys
            if key.to_user_string() not in RAW_LANDING
        ]

    def ranged_run(kind, start_key: str, end_key: str) -> dict:
        called_at = time.time()
        result = dg.materialize(
            assets,
            selection=keys_of(kind),
            resources=resources,
            instance=instance,
            tags={RANGE_START_TAG: start_key, RANGE_END_TAG: end_key},
            raise_on_error=True,
            run_config={"loggers": {"console": {"config": {"log_level": "WARNING"}}}},
        )
        return run_breakdown(instance, result.run_id, called_at, time.time())

    first_hour, last_hour = (hour_partition_key(hour) for hour in day_hours(day)[:: len(day_hours(day)) - 1])
    runs = {
        "hourly": ranged_run(dg.HourlyPartitionsDefinition, first_hour, last_hour),
        "daily": ranged_run(dg.DailyPartitionsDefinition, day_partition_key(day), day_partition_key(day)),
        "monthly": ranged_run(dg.MonthlyPartitionsDefinition, month_partition_key(day), month_partition_key(day)),
    }
    total: dict = {"runs": len(runs)}
    for name, part in runs.items():
        for key, value in part.items():
            total[key] = total.get(key, 0) + value
            total[f"{name}_run_{key}"] = value
    published = [p for p in where["reports"].rglob("*") if p.is_file()] + [p for p in hubs.rglob("*") if p.is_file()]
    total["published_files"] = len(published)
    total["published_bytes"] = sum(p.stat().st_size for p in published)
    return total
