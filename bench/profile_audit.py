"""Where the audit's raw evidence spends its time: `day_evidence` for a whole day, then each audit model
summed over the day's hours, then DuckDB's own profile of both models on one hour. Reads a lake a `bench
run` landed (raw hours only: the billed model then has nothing to read); writes nothing there.

    python -m bench.profile_audit bench/results/day-10000000/lake 2026-03-02 [--hour 15] [--memory-limit 8GB]
"""

import argparse
import statistics
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from bench.profile_hour import operators
from chargeback_pipeline.core.audit import raw_evidence
from chargeback_pipeline.core.periods import day_hours
from chargeback_pipeline.storage import sql
from chargeback_pipeline.storage.lake import Lake
from chargeback_pipeline.storage.object_store import LocalObjectStore

EVIDENCE_MODELS = (raw_evidence.SUCCESSFUL_MODEL, raw_evidence.STATUS_MODEL)


def day_seconds(lake: Lake, day, memory_limit: str, repeats: int) -> list[float]:
    """Wall seconds of `day_evidence`, as the audit asset calls it (one database under the limit)."""
    seconds = []
    for _ in range(repeats):
        with sql.shared_database(memory_limit) as database:
            started = time.perf_counter()
            raw_evidence.day_evidence(lake, day, database)
            seconds.append(time.perf_counter() - started)
    return seconds


def model_seconds(lake: Lake, day, memory_limit: str) -> dict[str, float]:
    """Each evidence model's wall seconds, summed over the day's landed hours."""
    spent = dict.fromkeys(EVIDENCE_MODELS, 0.0)
    with sql.shared_database(memory_limit) as database:
        for hour in day_hours(day):
            relations = raw_evidence.hour_relations(lake, hour)
            if relations is None:
                continue
            con = sql.connect(database)
            try:
                sql.build_models(con, [], relations)
                for model in EVIDENCE_MODELS:
                    started = time.perf_counter()
                    sql.select_model(con, model, raw_evidence.hour_params(hour))
                    spent[model] += time.perf_counter() - started
            finally:
                con.close()
    return spent


def profile_hour_models(lake: Lake, hour: datetime, memory_limit: str, scratch: Path) -> None:
    relations = raw_evidence.hour_relations(lake, hour)
    if relations is None:
        raise SystemExit(f"{hour:%Y-%m-%dT%H}: its raw rows are not landed in the lake")
    with sql.shared_database(memory_limit) as database:
        con = sql.connect(database)
        try:
            sql.build_models(con, [], relations)
            for model in EVIDENCE_MODELS:
                output = scratch / f"{model.replace('/', '_')}.json"
                con.execute("PRAGMA enable_profiling='json'")
                con.execute(f"PRAGMA profiling_output='{output}'")
                sql.select_model(con, model, raw_evidence.hour_params(hour))
                con.execute("PRAGMA disable_profiling")
                print(f"\n{model} at {hour:%Y-%m-%dT%H}: DuckDB operators by time (s, summed over threads)")
                for seconds, operator, rows in operators(output, top=8):
                    print(f"  {seconds:6.3f}  {operator:<22} {rows:>10,} rows")
        finally:
            con.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("lake", type=Path, help="a lake a `bench run` landed")
    parser.add_argument("day", type=date.fromisoformat, help="YYYY-MM-DD")
    parser.add_argument("--hour", type=int, choices=range(24), default=15, help="the hour profiled by DuckDB")
    parser.add_argument("--memory-limit", default=sql.DEFAULT_MEMORY_LIMIT, help="DuckDB's (the pipeline's)")
    parser.add_argument("--repeats", type=int, choices=range(1, 11), default=3, metavar="1..10")
    args = parser.parse_args()
    if not args.lake.is_dir():
        raise SystemExit(f"{args.lake}: no such lake")
    lake = Lake(LocalObjectStore(args.lake))
    landed = sum(raw_evidence.hour_relations(lake, hour) is not None for hour in day_hours(args.day))
    if not landed:
        raise SystemExit(f"{args.day}: no hour of the day has its raw rows landed in {args.lake}")
    seconds = day_seconds(lake, args.day, args.memory_limit, args.repeats)
    median = statistics.median(seconds)
    print(f"{args.day} ({landed} hours landed): day_evidence under {args.memory_limit}: median {median:.2f} s")
    print(f"  runs: {', '.join(f'{s:.2f}' for s in seconds)}")
    for model, spent in model_seconds(lake, args.day, args.memory_limit).items():
        print(f"  {model}: {spent:.2f} s over the day's hours")
    hour = datetime.combine(args.day, datetime.min.time(), UTC) + timedelta(hours=args.hour)
    with tempfile.TemporaryDirectory(prefix="profile-audit-") as scratch:
        profile_hour_models(lake, hour, args.memory_limit, Path(scratch))


if __name__ == "__main__":
    main()
