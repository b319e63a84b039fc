"""Child side: the pipeline's own stages, run on one simulated day in a local lake.

Each stage calls the real asset function (`asset.op.compute_fn`) with the real resources and a minimal
context (the partition window, a logger, what its per-partition checks read): the asset's own code,
without a Dagster run around it.
`transform_dagster` runs the same assets as two ranged Dagster runs (hourly, then daily), the way
`chargeback backfill` does, against a persistent SQLite instance, and splits each run's wall time into
time inside the asset bodies and Dagster's own (run start, planning, event log) from the event log.
"""

import inspect
import logging
import time
from datetime import date, datetime
from functools import cache, wraps
from types import SimpleNamespace

import dagster as dg

from bench.common import day_window, paths
from bench.dagster_runs import instance_for, run_breakdown
from chargeback_pipeline.defs.assets import build_assets
from chargeback_pipeline.defs.partitions import RANGE_END_TAG, RANGE_START_TAG, Calendar
from chargeback_pipeline.defs.resources import (
    DataQualityPolicy,
    ObjectStoreResource,
    PricingResource,
    SqlEngineResource,
)
from chargeback_pipeline.settings import Settings
from chargeback_pipeline.sources.resource import LogSourceResource
from chargeback_pipeline.sources.simulated import SimulatedSource
from chargeback_pipeline.sources.simulated.resource import SimulatedSourceResource
from chargeback_pipeline.storage import keys
from chargeback_pipeline.storage.sql import DEFAULT_MEMORY_LIMIT

CALENDAR = Calendar.starting(Settings.model_fields["partitions_start"].default)
ASSETS = {key.to_user_string(): asset for asset in build_assets(CALENDAR) for key in asset.keys}
HOURLY_LANDING = [ASSETS["raw_gateway_logs"], ASSETS["raw_llm_logs"], ASSETS["raw_deployment_metrics"]]
HOURLY_TRANSFORM = [ASSETS["attributed_requests"], ASSETS["deployment_reconciliation"]]
DAILY_TRANSFORM = [ASSETS["daily_product_usage"], ASSETS["daily_reconciliation"], ASSETS["product_usage_report"]]
PIPELINE_ASSETS = [*HOURLY_LANDING, *HOURLY_TRANSFORM, *DAILY_TRANSFORM]
DERIVED_DATASETS = [
    keys.ATTRIBUTED,
    keys.QUARANTINE,
    keys.DAILY_USAGE,
    keys.HOURLY_RECONCILIATION,
    keys.DAILY_RECONCILIATION,
]
LOGGER = logging.getLogger("bench")


def pipeline_resources(config: dict, source: LogSourceResource | None = None) -> dict:
    where = paths(config)
    return {
        "source": source or SimulatedSourceResource(simulated_requests_per_hour=config["requests_per_hour"]),
        "lake": ObjectStoreResource(local_dir=str(where["lake"])),
        "reports": ObjectStoreResource(local_dir=str(where["reports"])),
        "policy": DataQualityPolicy(),
        # The pipeline's default unless the run asks for another (`--duckdb-memory-limit`).
        "sql_engine": SqlEngineResource(memory_limit=config.get("duckdb_memory_limit") or DEFAULT_MEMORY_LIMIT),
        # No pricing file: the transform benchmark measures usage and reconciliation, not money.
        "pricing": PricingResource(),
    }


class StageContext:
    """What the asset bodies use of their context: the (ranged) partition window, a logger, the per-partition
    metadata they record, and what their per-partition check results need (the asset and its checks, an
    instance with no materialization, a run id)."""

    def __init__(self, start: datetime, end: datetime, asset: dg.AssetsDefinition | None = None):
        self.partition_time_window = dg.TimeWindow(start, end)
        self.log = LOGGER
        self.assets_def = asset
        self.selected_asset_check_keys = set(asset.check_keys) if asset is not None else set()
        self.run = SimpleNamespace(run_id="bench")
        self.instance = _instance()
        self.recorded: list[dict] = []

    def add_asset_metadata(self, metadata, *args, **kwargs) -> None:
        self.recorded.append(dict(metadata))

    def add_output_metadata(self, *args, **kwargs) -> None:
        pass


@cache
def _instance() -> dg.DagsterInstance:
    return dg.DagsterInstance.ephemeral()


def call_asset(
    asset: dg.AssetsDefinition, start: datetime, end: datetime, resources: dict, context: StageContext | None = None
) -> list:
    """Run an asset's own function over [start, end); its MaterializeResults and check results."""
    fn = asset.op.compute_fn.decorated_fn
    kwargs = {}
    for name, parameter in inspect.signature(fn).parameters.items():
        if name == "context":
            continue
        kwargs[name] = parameter.annotation() if name == "config" else resources[name]
    out = fn(context or StageContext(start, end, asset), **kwargs)
    return list(out) if inspect.isgenerator(out) else [out]


def row_count(results: list, recorded: list[dict] = ()) -> int:
    """Rows the assets wrote: each partition's `dagster/row_count` (and any on a MaterializeResult)."""
    total = 0
    for metadata in [*recorded, *(r.metadata for r in results if isinstance(r, dg.MaterializeResult))]:
        value = (metadata or {}).get("dagster/row_count", 0)
        total += getattr(value, "value", value) or 0
    return total


def failed_checks(results: list) -> list[str]:
    checks = (dg.AssetCheckResult, dg.AssetCheckEvaluation)
    return [r.check_name for r in results if isinstance(r, checks) and not r.passed]


class SourceTimer:
    """Times the simulated source's fetches (class-level wrap: reaches the instance a run builds too)."""

    seconds = 0.0
    calls = 0

    @classmethod
    def install(cls) -> None:
        for name in ("gateway_logs", "llm_logs", "deployment_metrics"):
            original = getattr(SimulatedSource, name)

            @wraps(original)
            def timed(self, window, _original=original):
                started = time.perf_counter()
                try:
                    return _original(self, window)
                finally:
                    cls.seconds += time.perf_counter() - started
                    cls.calls += 1

            setattr(SimulatedSource, name, timed)


def run_assets(assets: list, config: dict, start: datetime, end: datetime) -> dict:
    resources = pipeline_resources(config)
    started = time.perf_counter()
    results, recorded = [], []
    for asset in assets:
        context = StageContext(start, end, asset)
        results += call_asset(asset, start, end, resources, context)
        recorded += context.recorded
    wall = time.perf_counter() - started
    return {"wall_s": wall, "output_rows": row_count(results, recorded), "failed_checks": failed_checks(results)}


def stage(name: str, config: dict) -> dict:
    day = date.fromisoformat(config["day"])
    start, end = day_window(day)
    if name == "baseline":  # the same imports, no work: the floor under every stage's peak memory
        return {"wall_s": 0.0}
    if name == "land":
        SourceTimer.install()
        result = run_assets(HOURLY_LANDING, config, start, end)
        result["source_s"] = SourceTimer.seconds
        result["landing_s"] = result["wall_s"] - SourceTimer.seconds
        return result
    assets = {
        "attribute": [ASSETS["attributed_requests"]],
        "reconcile_hourly": [ASSETS["deployment_reconciliation"]],
        "rollup": [ASSETS["daily_product_usage"]],
        "reconcile_daily": [ASSETS["daily_reconciliation"]],
        "report": [ASSETS["product_usage_report"]],
        "transform_direct": [*HOURLY_TRANSFORM, *DAILY_TRANSFORM],
    }
    if name in assets:
        return run_assets(assets[name], config, start, end)
    if name == "transform_dagster":
        return transform_dagster(config, day)
    if name == "e2e_dagster":
        return e2e_dagster(config, day)
    if name == "published_chain":
        from bench.chain import published_chain

        return published_chain(config, day)
    raise ValueError(f"unknown stage {name!r}")


# --- through Dagster ------------------------------------------------------------------------------


def materialize(config: dict, assets: list, start_key: str, end_key: str, instance) -> dict:
    selection = [key for asset in assets for key in asset.keys]
    called_at = time.time()
    result = dg.materialize(
        PIPELINE_ASSETS,
        selection=selection,
        resources=pipeline_resources(config),
        instance=instance,
        tags={RANGE_START_TAG: start_key, RANGE_END_TAG: end_key},
        raise_on_error=True,
        run_config={"loggers": {"console": {"config": {"log_level": "WARNING"}}}},
    )
    returned_at = time.time()
    return run_breakdown(instance, result.run_id, called_at, returned_at)


def _add(total: dict, part: dict) -> None:
    for key, value in part.items():
        total[key] = total.get(key, 0) + value


def transform_dagster(config: dict, day: date) -> dict:
    """attributed_requests + deployment_reconciliation over the day's 24 hours (one ranged run), then
    daily_product_usage + daily_reconciliation + product_usage_report (a second run)."""
    instance = instance_for(config)
    total: dict = {}
    hourly = materialize(config, HOURLY_TRANSFORM, f"{day}-00:00", f"{day}-23:00", instance)
    daily = materialize(config, DAILY_TRANSFORM, f"{day}", f"{day}", instance)
    _add(total, hourly)
    _add(total, daily)
    total.update({f"hourly_run_{k}": v for k, v in hourly.items()})
    total.update({f"daily_run_{k}": v for k, v in daily.items()})
    total["runs"] = 2
    return total


def e2e_dagster(config: dict, day: date) -> dict:
    """Landing and transform of the day through Dagster: the hourly run lands and attributes, the daily
    run rolls up and publishes (the two runs of `chargeback backfill DAY`)."""
    SourceTimer.install()
    instance = instance_for(config)
    total: dict = {}
    hourly = materialize(config, [*HOURLY_LANDING, *HOURLY_TRANSFORM], f"{day}-00:00", f"{day}-23:00", instance)
    daily = materialize(config, DAILY_TRANSFORM, f"{day}", f"{day}", instance)
    _add(total, hourly)
    _add(total, daily)
    total["source_s"] = SourceTimer.seconds
    total["runs"] = 2
    return total
