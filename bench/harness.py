"""Running one measured piece in a fresh child process, and summarising repeats.

The child prints one `BENCH_RESULT {json}` line. The parent reaps it with os.wait4, whose rusage is the
child's own (ru_maxrss: its peak resident set), so every stage's peak memory is that stage's alone:
no other stage's allocations, no allocator caches carried over.
"""

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RESULT_PREFIX = "BENCH_RESULT "
REPO = Path(__file__).resolve().parent.parent


class ChildFailed(RuntimeError):
    pass


def emit(result: dict) -> None:
    """Child side: hand the result to the parent."""
    print(RESULT_PREFIX + json.dumps(result, default=str), flush=True)


def run_child(piece: str, config: dict, log_dir: Path, timeout: float = 3600) -> dict:
    """Run `python -m bench child PIECE CONFIG` and return its result plus wall time and peak RSS."""
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"{piece}.log"
    with tempfile.TemporaryFile("w+") as out, open(log_path, "a") as err:
        err.write(f"\n=== {time.strftime('%H:%M:%S')} {piece} {json.dumps(config)}\n")
        err.flush()
        load_before = os.getloadavg()[0]
        started = time.perf_counter()
        process = subprocess.Popen(
            [sys.executable, "-m", "bench", "child", piece, json.dumps(config)],
            stdout=out,
            stderr=err,
            cwd=REPO,
            env={**os.environ, "PYTHONHASHSEED": "0"},
        )
        deadline = started + timeout
        while True:
            pid, status, usage = os.wait4(process.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() > deadline:
                process.kill()
                raise ChildFailed(f"{piece} timed out after {timeout:.0f}s (log: {log_path})")
            time.sleep(0.02)
        process.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
        process_seconds = time.perf_counter() - started
        out.seek(0)
        lines = [line for line in out.read().splitlines() if line.startswith(RESULT_PREFIX)]
    if process.returncode != 0 or not lines:
        raise ChildFailed(f"{piece} failed with exit code {process.returncode} (log: {log_path})")
    result = json.loads(lines[-1][len(RESULT_PREFIX) :])
    result["peak_rss_bytes"] = usage.ru_maxrss * 1024  # Linux reports KiB
    result["process_seconds"] = process_seconds
    # CPU time is less disturbed than wall time by other work on the machine (1-minute load averages).
    result["cpu_s"] = usage.ru_utime + usage.ru_stime
    result["load_before"], result["load_after"] = load_before, os.getloadavg()[0]
    return result


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def summarise(results: list[dict]) -> dict:
    """Median of every numeric field over the repeats (each field's median on its own), plus the spread."""
    keys = {k for r in results for k, v in r.items() if isinstance(v, int | float) and not isinstance(v, bool)}
    summary = {k: median([r[k] for r in results if k in r]) for k in keys}
    walls = [r["wall_s"] for r in results if "wall_s" in r]
    if walls:
        summary["wall_min_s"], summary["wall_max_s"] = min(walls), max(walls)
    summary["repeats"] = len(results)
    return summary
