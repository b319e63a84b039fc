"""Where one hour's attribution spends its time: `attribute_hour`'s steps one by one, then DuckDB's own
profile of its two big queries. Reads a lake a `bench run` landed (the raw hour only); writes nothing there.

    python -m bench.profile_hour bench/results/day-10000000/lake 2026-03-02T15 [--repeats 4]
"""

import argparse
import json
import shutil
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from chargeback_pipeline.core import attribution as usage
from chargeback_pipeline.storage import sql
from chargeback_pipeline.storage.lake import Lake
from chargeback_pipeline.storage.object_store import LocalObjectStore

RAW = ("raw/gateway_logs", "raw/llm_logs", "raw/deployment_metrics")
MARGIN = timedelta(minutes=10)
WRITTEN_WITHOUT = (sql.PARTITION_HOUR, "caller_id")  # as the hour's object is written (landed without callers)


def copy_raw_hour(lake: Path, hour: str, into: Path) -> Lake:
    for dataset in RAW:
        shutil.copytree(lake / dataset / f"hour={hour}", into / dataset / f"hour={hour}")
    return Lake(LocalObjectStore(into))


def timed(steps: dict, name: str, work):
    wall, cpu = time.perf_counter(), time.process_time()
    result = work()
    steps.setdefault(name, []).append((time.perf_counter() - wall, time.process_time() - cpu))
    return result


def profile_steps(store: Lake, hour: datetime, out: Path, database) -> dict:
    """One pass of `attribute_hour`'s steps, each timed (wall and CPU seconds of this process)."""
    steps: dict = {}
    con = sql.connect(database)
    try:
        params = usage.hour_params(hour, [], core_margin=MARGIN)
        timed(steps, "int_llm_requests", lambda: usage.stage_hour(con, store, hour, []))
        timed(
            steps,
            "attributed write",
            lambda: sql.copy_model(con, usage.ATTRIBUTED_MODEL, params, out, exclude=WRITTEN_WITHOUT),
        )
        # The hour's written requests, with their hour, as attribute_hours reads them back.
        sql.register(con, "attributed_requests", sql.by_partition_hour({hour: sql.ParquetFiles((str(out),))}))
        timed(steps, "measures", lambda: sql.select_model(con, usage.HOUR_MEASURES_MODEL))
        params.update(has_requests_on_several_deployments=False)
        params.update(gateway_has_untrusted_rows=False, llm_has_untrusted_rows=False)
        timed(steps, "completeness", lambda: sql.select_model(con, "marts/fct_gateway_completeness", params))

        def small():
            sql.select_model(con, usage.LOGGED_TOKENS_MODEL, params)
            sql.select_model(con, "intermediate/int_hour_row_counts", params)
            sql.select_model(con, "marts/fct_quarantined_records", params)

        timed(steps, "logged tokens, row counts, quarantine", small)
    finally:
        con.close()
    return steps


def operators(profile_file: Path, top: int) -> list[tuple[float, str, int]]:
    found = []

    def walk(node):
        found.append((node.get("timing", 0.0), node.get("name", "?"), node.get("intermediate_rows", 0)))
        for child in node.get("children", []):
            walk(child)

    for node in json.loads(profile_file.read_text())["operator"]:
        walk(node)
    return sorted(found, reverse=True)[:top]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("lake", type=Path, help="a lake a `bench run` landed")
    parser.add_argument("hour", help="the hour's key, e.g. 2026-03-02T15")
    parser.add_argument("--repeats", type=int, default=4)
    args = parser.parse_args()
    hour = datetime.strptime(args.hour, "%Y-%m-%dT%H").replace(tzinfo=UTC)
    with tempfile.TemporaryDirectory(prefix="profile-hour-") as scratch:
        scratch = Path(scratch)
        store = copy_raw_hour(args.lake, args.hour, scratch / "lake")
        runs: dict = {}
        with sql.shared_database() as database:
            for _ in range(args.repeats):
                for name, values in profile_steps(store, hour, scratch / "attributed.parquet", database).items():
                    runs.setdefault(name, []).extend(values)
        print(f"Hour {args.hour}: attribute_hour's steps, medians of {args.repeats} (wall s, CPU s of the process)")
        print("| step | wall s | CPU s |\n|---|---:|---:|")
        for name, values in runs.items():
            wall = statistics.median(v[0] for v in values)
            cpu = statistics.median(v[1] for v in values)
            print(f"| {name} | {wall:.3f} | {cpu:.3f} |")

        con = sql.connect()
        try:
            for name, run in (("int_llm_requests", "stage"), ("fct_attributed_requests", "write")):
                con.execute("PRAGMA enable_profiling='json'")
                con.execute(f"PRAGMA profiling_output='{scratch / name}.json'")
                params = usage.hour_params(hour, [])
                if run == "stage":
                    usage.stage_hour(con, store, hour, [])
                else:
                    sql.copy_model(
                        con, usage.ATTRIBUTED_MODEL, params, scratch / "attributed.parquet", exclude=WRITTEN_WITHOUT
                    )
                con.execute("PRAGMA disable_profiling")
                print(f"\n{name}: DuckDB operators by time (s, summed over threads)")
                for seconds, operator, rows in operators(scratch / f"{name}.json", top=8):
                    print(f"  {seconds:6.3f}  {operator:<22} {rows:>10,} rows")
        finally:
            con.close()


if __name__ == "__main__":
    main()
