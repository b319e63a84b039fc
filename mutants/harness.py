"""Runs the planted bugs of `catalogue.MUTANTS`, each in a scratch copy of the repository, two at a time.

For each mutant: copy the repository's files (git's list), replace the mutant's text (it must occur exactly
once, else the harness fails: a refactor must not turn a mutant into a silent no-op), then either run a
short simulated `chargeback backfill` of one day (a day of a 31-day month, at a low rate) and require exit
1 with one of the named checks among the failed ERROR checks, or run the named test and require it to fail.
The unmutated copy is run the same way first-hand (the baseline): its backfill must exit 0 and every named
test must pass, or nothing the mutants show would mean anything.

Exit code 0 only when every mutant was caught as stated. The copies run with the interpreter running this
(`sys.executable`), their own code first on PYTHONPATH.
"""

import argparse
import csv
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import yaml

from mutants.catalogue import MUTANTS, Mutant

ROOT = Path(__file__).resolve().parents[1]
# A day of a 31-day month (the 720-hour bug shows).
DAY = "2026-12-01"
REQUESTS_PER_HOUR = 200
# The example pricing file's PTU counts are sized for 2,000 requests an hour; at a tenth of that rate a
# tenth of the capacity keeps the same shape: busy hours spill to the pay-as-you-go resource, so it serves
# several deployments (the rounding and not-billable bugs only show there), and night hours sit idle. The
# simulator and the pricing file are given the same counts.
PTU_COUNTS = {"gpt-4.1": 6, "gpt-4o": 6}
RUN_TIMEOUT_SECONDS = 900
# The failed ERROR checks a backfill names: its last line, or (when a run failed) its summary paragraphs.
FAILED_CHECKS = re.compile(r"^error: \d+ check\(s\) of severity ERROR failed: (.*)$", re.MULTILINE)
ERROR_PARAGRAPH = re.compile(r"^\s*ERROR: check (\S+) of asset (\S+) failed", re.MULTILINE)
BACKFILL = "from chargeback_pipeline.cli.commands import main; main()"


class MutantDoesNotApply(RuntimeError):
    pass


@dataclass
class Outcome:
    name: str
    caught: bool
    how: str
    seconds: float


def repository_files() -> list[str]:
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=ROOT, check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    return [name for name in listed.split("\0") if name and ((ROOT / name).is_file() or (ROOT / name).is_symlink())]


def snapshot(files: list[str], where: Path) -> Path:
    """The repository's files, copied once: every mutant copies this, so editing the working tree while
    the harness runs changes nothing it judges."""
    for name in files:
        target = where / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if (ROOT / name).is_symlink():  # the package's links to the root's SQL models and example pricing file
            target.symlink_to(os.readlink(ROOT / name))
        else:
            shutil.copy2(ROOT / name, target)
    return where


def scratch_copy(base: Path, where: Path, mutant: Mutant | None) -> Path:
    copy = where / "repo"
    shutil.copytree(base, copy, symlinks=True)
    tools = ROOT / ".tools"
    if tools.exists():  # Azurite, for tests that start one
        (copy / ".tools").symlink_to(tools)
    if mutant is not None:
        apply(mutant, copy)
    return copy


def apply(mutant: Mutant, copy: Path) -> None:
    path = copy / mutant.path
    text = path.read_text(encoding="utf-8")
    found = text.count(mutant.old)
    if found != 1:
        raise MutantDoesNotApply(f"{mutant.name}: {mutant.path} holds its text {found} times, not once: update it")
    path.write_text(text.replace(mutant.old, mutant.new), encoding="utf-8")


def environment(copy: Path, where: Path) -> dict[str, str]:
    env = {name: value for name, value in os.environ.items() if not name.startswith("CHARGEBACK_")}
    home = where / "dagster_home"
    home.mkdir(exist_ok=True)
    shutil.copy2(copy / "dagster.yaml", home / "dagster.yaml")
    env.update(
        {
            "PYTHONPATH": str(copy),
            "DAGSTER_HOME": str(home),
            "CHARGEBACK_SOURCE": "simulated",
            "CHARGEBACK_SIMULATED_REQUESTS_PER_HOUR": str(REQUESTS_PER_HOUR),
            "CHARGEBACK_PARTITIONS_START": DAY[:8] + "01",
            "CHARGEBACK_LAKE_DIR": str(where / "lake"),
            "CHARGEBACK_OUTPUT_DIR": str(where / "reports"),
            "CHARGEBACK_PRICING_FILE": str(scaled_pricing(copy, where)),
            "CHARGEBACK_SIMULATED_PTU_COUNTS": ",".join(f"{name}={count}" for name, count in PTU_COUNTS.items()),
        }
    )
    return env


def scaled_pricing(copy: Path, where: Path) -> Path:
    """The copy's example pricing file with every PTU rate at `PTU_COUNTS`."""
    document = yaml.safe_load((copy / "pricing.example.yaml").read_text(encoding="utf-8"))
    scaled = 0
    for backend in document["backends"].values():
        if backend.get("kind") != "ptu":
            continue
        for name, deployment in backend["deployments"].items():
            for rate in deployment["rates"]:
                rate["ptu_count"] = PTU_COUNTS[name]
                scaled += 1
    if not scaled:
        raise RuntimeError("the example pricing file names no PTU rate to scale: update PTU_COUNTS")
    path = where / "pricing.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    return path


def run(command: list[str], copy: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        command, cwd=copy, env=env, capture_output=True, text=True, timeout=RUN_TIMEOUT_SECONDS, check=False
    )


def backfill(copy: Path, where: Path) -> tuple[int, list[str], str]:
    """Exit code, the failed ERROR checks it names, and its output."""
    env = environment(copy, where)
    imported = run([sys.executable, "-c", "import chargeback_pipeline; print(chargeback_pipeline.__file__)"], copy, env)
    if not imported.stdout.strip().startswith(str(copy)):
        raise RuntimeError(f"the copy's code is not the one imported: {imported.stdout.strip() or imported.stderr}")
    done = run([sys.executable, "-c", BACKFILL, "backfill", DAY], copy, env)
    output = done.stdout + done.stderr
    listed = FAILED_CHECKS.search(output)
    failed = [name.strip() for name in listed.group(1).split(",")] if listed else []
    failed += [f"{asset}:{check}" for check, asset in ERROR_PARAGRAPH.findall(output)]
    return done.returncode, list(dict.fromkeys(failed)), output


def paygo_deployments_charged(where: Path) -> set[str]:
    """The deployments with a pay-as-you-go cost in the published chargeback: the planted rounding and
    not-billable bugs need at least two on one resource, or they change nothing."""
    published = where / "reports" / "daily" / f"usage_date={DAY}" / "chargeback.csv"
    with published.open(encoding="utf-8", newline="") as handle:
        return {
            row["deployment_name"]
            for row in csv.DictReader(handle)
            if row["cost_type"] == "paygo" and Decimal(row["paygo_cost"]) > 0
        }


def named_test(copy: Path, where: Path, test: str) -> subprocess.CompletedProcess:
    env = environment(copy, where)
    return run([sys.executable, "-m", "pytest", "-x", "-q", "-n", "0", "-p", "no:cacheprovider", test], copy, env)


def judge(mutant: Mutant | None, base: Path, scratch: Path) -> Outcome:
    """The mutant's outcome; an error of the harness itself is a failed outcome, never a crash of the rest."""
    try:
        return _judge(mutant, base, scratch)
    except Exception as error:  # reported as this mutant's failure, with its message
        return Outcome(mutant.name if mutant else "baseline", False, f"harness error: {error!r}", 0.0)


def _judge(mutant: Mutant | None, base: Path, scratch: Path) -> Outcome:
    name = mutant.name if mutant else "baseline"
    where = scratch / name
    where.mkdir()
    started = time.monotonic()
    try:
        copy = scratch_copy(base, where, mutant)
    except MutantDoesNotApply as error:
        return Outcome(name, False, str(error), 0.0)
    if mutant is None:
        code, failed, output = backfill(copy, where)
        ok = code == 0
        how = "backfill exit 0" if ok else f"backfill exit {code}: {failed or output[-2000:]}"
        if ok:
            spilled = paygo_deployments_charged(where)
            if len(spilled) < 2:
                ok = False
                how += f"; the pay-as-you-go resource charged {sorted(spilled)} only: the day lost its spillover"
        for test in sorted({m.test for m in MUTANTS if m.test}):
            result = named_test(copy, where, test)
            if result.returncode != 0:
                ok, how = False, f"{how}; {test} fails on the unmutated code: {result.stdout[-2000:]}"
        return Outcome(name, ok, how, time.monotonic() - started)
    if mutant.test:
        result = named_test(copy, where, mutant.test)
        caught = result.returncode == 1
        how = f"{mutant.test} failed" if caught else f"{mutant.test} exit {result.returncode}"
        return Outcome(name, caught, how, time.monotonic() - started)
    code, failed, output = backfill(copy, where)
    named = [check for check in mutant.caught_by if check in failed]
    caught = code == 1 and bool(named)
    how = f"exit {code}, failed ERROR checks: {', '.join(failed) or 'none'}"
    if not caught and code != 0:
        how += f"; output: {output[-1500:]}"
    return Outcome(name, caught, how, time.monotonic() - started)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mutants", description=__doc__.split("\n")[0])
    parser.add_argument("names", nargs="*", help="only these mutants (default: all)")
    parser.add_argument("--jobs", type=int, default=2, help="mutants run at once (default 2)")
    args = parser.parse_args(argv)
    unknown = set(args.names) - {m.name for m in MUTANTS}
    if unknown:
        parser.error(f"unknown mutants: {', '.join(sorted(unknown))}")
    if args.jobs < 1:
        parser.error("--jobs must be at least 1")
    chosen = [m for m in MUTANTS if not args.names or m.name in args.names]
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="mutants-") as scratch, ThreadPoolExecutor(args.jobs) as pool:
        base = snapshot(repository_files(), Path(scratch) / "snapshot")
        outcomes = list(pool.map(lambda m: judge(m, base, Path(scratch)), [None, *chosen]))
    width = max(len(o.name) for o in outcomes)
    for outcome in outcomes:
        verdict = ("ok" if outcome.name == "baseline" else "caught") if outcome.caught else "FAILED"
        print(f"{outcome.name:<{width}}  {verdict:<6}  {outcome.seconds:5.0f}s  {outcome.how}")
    survived = [o.name for o in outcomes if not o.caught]
    print(f"{len(chosen)} mutants, {len(survived)} not caught as stated, {time.monotonic() - started:.0f}s")
    return 1 if survived else 0
