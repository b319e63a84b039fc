"""Child side: Dagster runs as the benchmark makes them (the instance `chargeback backfill` would use,
and each run's wall time split into asset bodies and Dagster's own share, from its event log). Shared by
the transform (`stages`), the whole published chain (`chain`) and the backfill benchmark."""

import os

import dagster as dg

from bench.common import paths


def instance_for(config: dict) -> dg.DagsterInstance:
    # What `chargeback backfill` sets for its runs (one planned event per asset and run, events stored in
    # batches where the storage can): this child process runs them the same way.
    from chargeback_pipeline.cli.backfill import BACKFILL_DAGSTER_ENV

    for name, value in BACKFILL_DAGSTER_ENV.items():
        os.environ.setdefault(name, value)
    home = paths(config)["dagster_home"]
    home.mkdir(parents=True, exist_ok=True)
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    os.environ["DAGSTER_HOME"] = str(home)
    return dg.DagsterInstance.get()


def run_breakdown(instance: dg.DagsterInstance, run_id: str, called_at: float, returned_at: float) -> dict:
    """Split one run's wall time (epoch seconds) into asset compute and Dagster overhead, by its event log.

    Compute of a step = from its STEP_START to the first event its asset body produced (its first
    materialization or check result: the bodies yield them only after all their work). Everything else
    (run creation and start, planning, resource set-up, writing the per-partition materialization and
    check events, run end) is Dagster's.
    """
    records = instance.get_records_for_run(run_id, limit=1_000_000).records
    step_start, first_output, compute = {}, {}, 0.0
    run_started = None
    for record in records:
        entry = record.event_log_entry
        event = entry.dagster_event
        if event is None:
            continue
        kind = event.event_type
        if kind == dg.DagsterEventType.RUN_START:
            run_started = entry.timestamp
        elif kind == dg.DagsterEventType.STEP_START:
            step_start[event.step_key] = entry.timestamp
        elif kind in (dg.DagsterEventType.ASSET_MATERIALIZATION, dg.DagsterEventType.ASSET_CHECK_EVALUATION):
            first_output.setdefault(event.step_key, entry.timestamp)
    for step, began in step_start.items():
        compute += first_output.get(step, began) - began
    wall = returned_at - called_at
    return {
        "wall_s": wall,
        "compute_s": compute,
        "dagster_s": wall - compute,
        "run_start_s": (run_started or called_at) - called_at,
        "events": len(records),
    }
