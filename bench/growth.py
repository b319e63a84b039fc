"""Parent side of `python -m bench growth`: the transform at several daily volumes, and its plot.

For each volume: one simulated day landed once, then, per repeat, the whole transform through Dagster
(`transform_dagster`: the hourly and the daily job's assets on the landed day, as `bench run` measures it)
and the bare DuckDB floor query on the same files (`duckdb_single`), each in a fresh process. The table and
the PNG (time and peak memory against volume, both axes logarithmic) come from the same results.json.
"""

import json
import shutil
from datetime import date
from pathlib import Path

from bench.day import clean_derived, landed_rows, log
from bench.harness import run_child, summarise
from bench.machine import describe

PIECES = ("transform_dagster", "published_chain", "duckdb_single")
# pandas holds the whole day (9.5 GiB at 10M requests a day): run where its target is judged, not at 30M.
PANDAS_AT = (10_000_000,)
MIB = 2**20


def run_growth(
    results_dir: Path, day: date, volumes: list[int], repeats: int, pandas_at: tuple[int, ...] = PANDAS_AT
) -> dict:
    points = []
    for requests_per_day in volumes:
        workdir = results_dir / f"day-{requests_per_day}"
        workdir.mkdir(parents=True, exist_ok=True)
        config = {"workdir": str(workdir), "day": day.isoformat(), "requests_per_hour": requests_per_day // 24}
        logs = workdir / "logs"
        log(f"growth: {requests_per_day:,} requests a day, {repeats} repeat(s), workdir {workdir}")
        shutil.rmtree(workdir / "lake" / "raw", ignore_errors=True)
        land = run_child("land", config, logs)
        pieces = PIECES + (("pandas",) if requests_per_day in pandas_at else ())
        runs: dict[str, list[dict]] = {piece: [] for piece in pieces}
        for _ in range(max(1, repeats)):
            for piece in pieces:
                clean_derived(workdir)  # every piece writes its objects anew
                shutil.rmtree(workdir / "dagster_home", ignore_errors=True)
                runs[piece].append(run_child(piece, config, logs))
                log(f"  {piece:<18} {runs[piece][-1]['wall_s']:8.2f} s")
        rows = landed_rows(workdir, day.isoformat())
        points.append(
            {
                "requests_per_day": requests_per_day,
                "raw_rows": rows["gateway_rows"] + rows["llm_rows"],
                "land_wall_s": land["wall_s"],
                **{piece: summarise(results) for piece, results in runs.items()},
            }
        )
    summary = {"machine": describe(), "day": day.isoformat(), "repeats": repeats, "points": points}
    (results_dir / "growth.json").write_text(json.dumps(summary, indent=2, default=str))
    return summary


def plot_growth(summary: dict, path: Path) -> None:
    """Time and peak memory of the transform (and the floor's time) against volume, as a PNG."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter, NullFormatter

    points = summary["points"]
    volumes = [p["requests_per_day"] / 1e6 for p in points]
    figure = Figure(figsize=(9, 3.6))
    time_axes, memory_axes = figure.subplots(1, 2)
    time_axes.plot(volumes, [p["transform_dagster"]["wall_s"] for p in points], "o-", label="transform through Dagster")
    time_axes.plot(volumes, [p["published_chain"]["wall_s"] for p in points], "^-", label="whole published chain")
    time_axes.plot(volumes, [p["duckdb_single"]["wall_s"] for p in points], "s--", label="bare DuckDB query (floor)")
    time_axes.set_ylabel("wall time, s")
    memory_axes.plot(
        volumes, [p["transform_dagster"]["peak_rss_bytes"] / MIB for p in points], "o-", label="transform (peak RSS)"
    )
    memory_axes.plot(volumes, [p["duckdb_single"]["peak_rss_bytes"] / MIB for p in points], "s--", label="floor")
    memory_axes.set_ylabel("peak RSS, MiB")
    for axes in (time_axes, memory_axes):
        axes.set_xscale("log")
        axes.set_yscale("log")
        axes.set_xticks(volumes, [f"{v:g}M" for v in volumes])
        axes.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
        axes.yaxis.set_minor_formatter(NullFormatter())
        axes.set_xlabel("requests a day")
        axes.grid(color="#dddddd", linewidth=0.5, which="both")
        axes.legend(frameon=False, fontsize=8)
    figure.suptitle(f"Growth of one day's transform ({summary['machine'].get('nproc', '?')} cores)", fontsize=10)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110, metadata={"Software": None})


def print_growth(summary: dict) -> None:
    from bench.report import print_target_table, target_rows

    print(
        "| requests a day | raw rows | transform wall s | of which Dagster s | CPU s | peak RSS MiB "
        "| floor wall s | floor peak MiB | transform / floor | whole chain wall s | chain / transform |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for point in summary["points"]:
        transform, floor, chain = point["transform_dagster"], point["duckdb_single"], point["published_chain"]
        print(
            f"| {point['requests_per_day']:,} | {point['raw_rows']:,} | {transform['wall_s']:.2f} | "
            f"{transform.get('dagster_s', float('nan')):.2f} | {transform.get('cpu_s', float('nan')):.1f} | "
            f"{transform['peak_rss_bytes'] / MIB:,.0f} | {floor['wall_s']:.2f} | "
            f"{floor['peak_rss_bytes'] / MIB:,.0f} | {transform['wall_s'] / floor['wall_s']:.1f}x | "
            f"{chain['wall_s']:.2f} | {chain['wall_s'] / transform['wall_s']:.2f}x |"
        )
    print_target_table([row for point in summary["points"] for row in target_rows(point["requests_per_day"], point)])
