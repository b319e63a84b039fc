"""`python -m bench ...`: see BENCHMARKS.md for what each command measures."""

import argparse
import json
import sys
from datetime import date
from pathlib import Path

DEFAULT_DAY = "2026-03-02"
RESULTS = Path(__file__).resolve().parent / "results"


# pandas is the peer's (the bench extra), not the pipeline's: the production image (deploy/Dockerfile,
# requirements.lock) does not have it. With it installed, pyarrow imports it on its first `pa.array` of a
# list (about 48 MiB of every process's memory), so every piece but the peer runs without it, as in the image.
PANDAS_PIECES = ("pandas",)


class _WithoutPandas:
    """A meta path finder for which pandas is not installed (`import pandas` raises ModuleNotFoundError)."""

    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "pandas":
            raise ModuleNotFoundError(f"No module named {name!r} (the pipeline's pieces run without pandas)", name=name)
        return None


def _child(piece: str, config: dict) -> None:
    if piece not in PANDAS_PIECES:
        sys.meta_path.insert(0, _WithoutPandas())
    from bench.harness import emit

    if piece in ("duckdb_single", "duckdb_hourly", "scan_only", "pandas"):
        from bench.floors import FLOORS

        emit(FLOORS[piece](config))
    elif piece == "ingest":
        from bench.ingest import ingest

        emit(ingest(config))
    elif piece == "serve_standin":
        from bench.ingest import serve

        serve(config)
    elif piece == "backfill":
        from bench.backfill import backfill

        emit(backfill(config))
    else:
        from bench.stages import stage

        emit(stage(piece, config))


def _absolute(path: str) -> Path:
    # Child processes get the folder in their config (DAGSTER_HOME must be absolute).
    return Path(path).resolve()


def _repeats(text: str) -> int:
    # Medians need at least one run; refused here, before a day is landed or a stand-in started.
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"at least 1, got {value}")
    return value


def _volumes(text: str) -> list[int]:
    # Comma-separated requests a day (--volumes, --pandas-at): refused with one line, not a traceback.
    try:
        return [int(value) for value in text.split(",") if value.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"comma-separated whole numbers, got {text!r}") from None


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="one simulated day: landing, each stage, Dagster, floors, ingest")
    run.add_argument("--requests-per-day", type=int, default=10_000_000)
    run.add_argument("--quick", action="store_true", help="a 1M-request day (overrides --requests-per-day)")
    run.add_argument("--repeats", type=_repeats, default=3)
    run.add_argument("--land-repeats", type=int, default=None, help="repeats that re-land (default: all)")
    run.add_argument("--day", default=DEFAULT_DAY)
    run.add_argument("--workdir", type=_absolute, default=None)
    run.add_argument("--no-pandas", action="store_true")
    run.add_argument("--no-ingest", action="store_true")
    run.add_argument("--e2e", action="store_true", help="also land + transform once through Dagster")
    run.add_argument("--ingest-hour", type=int, default=12, help="UTC hour of the day pulled in the ingest bench")
    run.add_argument(
        "--duckdb-memory-limit", default=None, help="the hourly assets' DuckDB limit (default: the pipeline's, 600MB)"
    )

    ingest = commands.add_parser("ingest", help="Log Analytics ingest through LogsQueryClient vs its floors")
    ingest.add_argument("--requests-per-day", type=int, default=10_000_000)
    ingest.add_argument("--hour", type=int, default=12)
    ingest.add_argument("--repeats", type=_repeats, default=3)
    ingest.add_argument("--day", default=DEFAULT_DAY)
    ingest.add_argument("--workdir", type=_absolute, default=None)

    backfill = commands.add_parser("backfill", help="an N-day backfill through Dagster with ranged runs")
    backfill.add_argument("--days", type=int, default=30)
    backfill.add_argument("--requests-per-hour", type=int, default=100_000)
    backfill.add_argument("--days-per-run", type=int, default=7)
    backfill.add_argument("--first-day", default="2026-02-01")
    backfill.add_argument("--workdir", type=_absolute, default=None)
    backfill.add_argument(
        "--instance",
        choices=("sqlite", "postgres"),
        default="sqlite",
        help="Dagster instance storage: SQLite (default) or, as in production, PostgreSQL (a throwaway local "
        "server; needs the PostgreSQL server binaries on PATH and dagster-postgres)",
    )

    growth = commands.add_parser(
        "growth",
        help="the transform, the whole published chain and the floor at several daily volumes (pandas at 10M), "
        "with issue 27's targets table and a PNG plot",
    )
    growth.add_argument(
        "--volumes", type=_volumes, default="1000000,3000000,10000000,30000000", help="requests a day, comma-separated"
    )
    growth.add_argument("--repeats", type=_repeats, default=1)
    growth.add_argument("--day", default=DEFAULT_DAY)
    growth.add_argument("--plot", type=Path, default=Path(__file__).resolve().parent / "growth.png")
    growth.add_argument(
        "--pandas-at",
        type=_volumes,
        default="10000000",
        help="volumes at which pandas runs too, comma-separated ('' for none; it holds the whole day in memory)",
    )

    child = commands.add_parser("child", help=argparse.SUPPRESS)
    child.add_argument("piece")
    child.add_argument("config")

    args = parser.parse_args(argv)
    if args.command == "child":
        _child(args.piece, json.loads(args.config))
        return

    from bench.report import print_backfill, print_day, print_ingest

    if args.command == "run":
        from bench.day import run_day
        from bench.ingest import run_ingest

        requests = 1_000_000 if args.quick else args.requests_per_day
        workdir = args.workdir or RESULTS / f"day-{requests}"
        floors = ["duckdb_single", "duckdb_hourly", "scan_only"] + ([] if args.no_pandas else ["pandas"])
        summary = run_day(
            workdir,
            date.fromisoformat(args.day),
            requests,
            args.repeats,
            args.repeats if args.land_repeats is None else args.land_repeats,
            floors,
            args.e2e,
            args.duckdb_memory_limit,
        )
        if not args.no_ingest:
            summary["ingest"] = run_ingest(workdir, args.day, requests, args.ingest_hour, args.repeats)
            (workdir / "results.json").write_text(json.dumps(summary, indent=2, default=str))
        print_day(summary, sys.argv)
    elif args.command == "ingest":
        from bench.ingest import run_ingest

        workdir = args.workdir or RESULTS / f"ingest-{args.requests_per_day}"
        result = run_ingest(workdir, args.day, args.requests_per_day, args.hour, args.repeats)
        print_ingest(result)
    elif args.command == "growth":
        from bench.growth import plot_growth, print_growth, run_growth

        volumes = args.volumes
        if not volumes or min(volumes) < 24:
            parser.error("--volumes needs at least one volume of 24 requests a day or more")
        pandas_at = tuple(args.pandas_at)
        summary = run_growth(RESULTS / "growth", date.fromisoformat(args.day), volumes, args.repeats, pandas_at)
        plot_growth(summary, args.plot)
        print_growth(summary)
        print(f"plot: {args.plot}")
    elif args.command == "backfill":
        from bench.backfill import run_backfill

        suffix = "" if args.instance == "sqlite" else f"-{args.instance}"
        workdir = args.workdir or RESULTS / f"backfill-{args.days}d-{args.requests_per_hour}{suffix}"
        result = run_backfill(
            workdir,
            date.fromisoformat(args.first_day),
            args.days,
            args.requests_per_hour,
            args.days_per_run,
            args.instance,
        )
        print_backfill(result, sys.argv)
