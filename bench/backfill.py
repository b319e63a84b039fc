"""A multi-day backfill through Dagster with ranged runs, as `chargeback backfill` does it.

Runs `chargeback_pipeline.cli.backfill.backfill` (every asset of the definitions: landing from the simulator,
attribution, reconciliation, reports and whatever else the graph holds) against a fresh Dagster instance,
with the resources `definitions.build_resources` builds from settings. Reports total wall time, the number
of runs, and, from each run's event log, the time inside asset bodies against Dagster's own (run creation
and start, planning, resource set-up, event log writes, run end).

The instance's storage is SQLite (Dagster's default, in `<workdir>/dagster_home`) or, with
`instance="postgres"`, PostgreSQL as in production (deploy/dagster.yaml): a throwaway local server in
`<workdir>/postgres` (bench/postgres.py), started by the parent around the child that runs the backfill.
"""

import json
import os
import shutil
import time
from datetime import date, timedelta
from pathlib import Path

from bench.harness import run_child
from bench.machine import describe


def backfill(config: dict) -> dict:
    import yaml  # a dependency of dagster's

    home = Path(config["workdir"]) / "dagster_home"
    home.mkdir(parents=True, exist_ok=True)
    instance_yaml: dict = {"telemetry": {"enabled": False}}
    if config.get("postgres"):  # dagster-postgres's `postgres_db` settings of the parent's local server
        # The driver dagster-postgres depends on (psycopg2-binary): SQLAlchemy 2.1 maps a bare `postgresql://`
        # to psycopg 3, which nothing here installs.
        db = {**config["postgres"], "scheme": "postgresql+psycopg2"}
        instance_yaml["storage"] = {"postgres": {"postgres_db": db}}
    (home / "dagster.yaml").write_text(yaml.safe_dump(instance_yaml, sort_keys=False))
    os.environ["DAGSTER_HOME"] = str(home)

    import dagster as dg
    import pyarrow.parquet as pq

    from bench.dagster_runs import run_breakdown
    from bench.stages import SourceTimer
    from chargeback_pipeline.cli.backfill import backfill as run_backfill
    from chargeback_pipeline.definitions import build_definitions
    from chargeback_pipeline.settings import load_settings

    SourceTimer.install()
    work = Path(config["workdir"])
    # The simulated source's own setting (this is the benchmark's child process: its environment only).
    os.environ["CHARGEBACK_SIMULATED_REQUESTS_PER_HOUR"] = str(config["requests_per_hour"])
    settings = load_settings(lake_dir=work / "lake", output_dir=work / "reports")
    instance = dg.DagsterInstance.get()
    first = date.fromisoformat(config["first_day"])
    last = first + timedelta(days=config["days"] - 1)
    progress = []

    def on_chunk(chunk) -> None:
        progress.append(time.perf_counter())
        print(f"  chunk {chunk.first_day}..{chunk.last_day} done at {progress[-1] - started:.1f}s", flush=True)

    started = time.perf_counter()
    called_at = time.time()
    run_backfill(
        first, last, build_definitions(settings), instance, days_per_run=config["days_per_run"], on_chunk=on_chunk,
        log_level="WARNING",
    )  # fmt: skip
    wall = time.perf_counter() - started
    records = instance.get_run_records()
    compute = events = 0.0
    for record in records:
        part = run_breakdown(instance, record.dagster_run.run_id, called_at, called_at)
        compute += part["compute_s"]
        events += part["events"]
    gateway_rows = sum(
        pq.ParquetFile(p).metadata.num_rows for p in (work / "lake/raw/gateway_logs").glob("*/rows.parquet")
    )
    return {
        "wall_s": wall,
        "runs": len(records),
        "compute_s": compute,
        "dagster_s": wall - compute,
        "source_s": SourceTimer.seconds,
        "events": int(events),
        "gateway_rows": gateway_rows,
        "chunk_seconds": [b - a for a, b in zip([started, *progress], progress, strict=False)],
    }


def run_backfill(
    workdir: Path, first_day: date, days: int, requests_per_hour: int, days_per_run: int, instance: str = "sqlite"
) -> dict:
    if instance not in ("sqlite", "postgres"):
        raise ValueError(f"instance must be sqlite or postgres, not {instance!r}")
    if instance == "postgres":
        import importlib.util

        if importlib.util.find_spec("dagster_postgres") is None:
            raise SystemExit("--instance postgres needs dagster-postgres: pip install -e '.[bench]'")
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    config = {
        "workdir": str(workdir),
        "first_day": first_day.isoformat(),
        "days": days,
        "requests_per_hour": requests_per_hour,
        "days_per_run": days_per_run,
        "instance": instance,
    }
    print(
        f"[{time.strftime('%H:%M:%S')}] backfill {days} days at {requests_per_hour:,}/h, {days_per_run} days per run, "
        f"{instance} Dagster instance"
    )
    if instance == "postgres":
        from bench.postgres import PostgresUnavailable, local_postgres, server_version

        try:
            with local_postgres(workdir / "postgres") as postgres:
                print(f"  PostgreSQL on 127.0.0.1:{postgres['port']} (data in {workdir / 'postgres'})", flush=True)
                result = run_child("backfill", {**config, "postgres": postgres}, workdir / "logs", timeout=6 * 3600)
        except PostgresUnavailable as error:
            raise SystemExit(f"--instance postgres: {error}") from error
        result["postgres_server"] = server_version()
    else:
        result = run_child("backfill", config, workdir / "logs", timeout=6 * 3600)
    result.update(config, machine=describe())
    (workdir / "results.json").write_text(json.dumps(result, indent=2, default=str))
    return result
