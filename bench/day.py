"""Parent side of `python -m bench run`: one simulated day, landed, transformed, compared with its floors."""

import json
import shutil
import time
from datetime import date
from pathlib import Path

import pyarrow.parquet as pq

from bench.harness import ChildFailed, run_child, summarise
from bench.machine import describe

STAGES = ["land", "attribute", "reconcile_hourly", "rollup", "reconcile_daily", "report"]
TRANSFORM_STAGES = STAGES[1:]
FLOORS = ["duckdb_single", "duckdb_hourly", "scan_only", "pandas"]


def clean_derived(workdir: Path) -> None:
    """Remove everything downstream of the raw landing (every lake dataset but raw/, the published reports
    and the FinOps hubs copy), so every repeat writes new objects (an unchanged object is skipped by the
    lake, which would flatter the second repeat)."""
    lake = workdir / "lake"
    for dataset in lake.iterdir() if lake.is_dir() else ():
        if dataset.name != "raw":
            shutil.rmtree(dataset, ignore_errors=True)
    shutil.rmtree(workdir / "reports", ignore_errors=True)
    shutil.rmtree(workdir / "hubs", ignore_errors=True)


def landed_rows(workdir: Path, day: str) -> dict:
    lake = workdir / "lake"

    def rows(dataset: str, part: str = "rows") -> int:
        return sum(pq.ParquetFile(p).metadata.num_rows for p in lake.glob(f"{dataset}/hour={day}T*/{part}.parquet"))

    counts = {"gateway_rows": rows("raw/gateway_logs"), "llm_rows": rows("raw/llm_logs")}
    counts["attributed_rows"] = rows("attributed_requests")
    return counts


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def run_day(
    workdir: Path,
    day: date,
    requests_per_day: int,
    repeats: int,
    land_repeats: int,
    floors: list[str],
    e2e: bool,
    duckdb_memory_limit: str | None = None,
) -> dict:
    workdir.mkdir(parents=True, exist_ok=True)
    config = {"workdir": str(workdir), "day": day.isoformat(), "requests_per_hour": requests_per_day // 24}
    if duckdb_memory_limit:
        config["duckdb_memory_limit"] = duckdb_memory_limit
    logs = workdir / "logs"
    results: dict[str, list[dict]] = {}

    def measure(piece: str) -> dict:
        result = run_child(piece, config, logs)
        results.setdefault(piece, []).append(result)
        log(
            f"  {piece:<18} {result['wall_s']:8.2f} s   peak {result['peak_rss_bytes'] / 2**20:7.0f} MiB"
            + (f"   checks failed: {result['failed_checks']}" if result.get("failed_checks") else "")
        )
        return result

    log(f"bench day {day}: {requests_per_day:,} requests, {repeats} repeats, workdir {workdir}")
    measure("baseline")
    for repeat in range(1, repeats + 1):
        log(f"repeat {repeat}/{repeats}")
        if repeat <= land_repeats or not (workdir / "lake" / "raw").exists():
            shutil.rmtree(workdir / "lake" / "raw", ignore_errors=True)
            measure("land")
        clean_derived(workdir)
        for stage in TRANSFORM_STAGES:
            measure(stage)
        clean_derived(workdir)
        measure("transform_direct")
        clean_derived(workdir)
        shutil.rmtree(workdir / "dagster_home", ignore_errors=True)
        measure("transform_dagster")
        clean_derived(workdir)
        shutil.rmtree(workdir / "dagster_home", ignore_errors=True)
        measure("published_chain")
        for floor in floors:
            measure(floor)
    if e2e:
        log("end to end through Dagster (landing + transform, two ranged runs)")
        clean_derived(workdir)
        shutil.rmtree(workdir / "lake" / "raw", ignore_errors=True)
        shutil.rmtree(workdir / "dagster_home", ignore_errors=True)
        measure("e2e_dagster")

    from bench.floors import pipeline_totals  # imported late: duckdb only
    from chargeback_pipeline.storage.sql import DEFAULT_MEMORY_LIMIT

    summary = {
        "machine": describe(),
        "requests_per_day": requests_per_day,
        "day": day.isoformat(),
        "repeats": repeats,
        "duckdb_memory_limit": duckdb_memory_limit or DEFAULT_MEMORY_LIMIT,
        "rows": landed_rows(workdir, day.isoformat()),
        "pipeline_totals": pipeline_totals(config),
        "results": {piece: summarise(runs) for piece, runs in results.items()},
        "runs": results,
    }
    (workdir / "results.json").write_text(json.dumps(summary, indent=2, default=str))
    return summary


__all__ = ["ChildFailed", "run_day"]
