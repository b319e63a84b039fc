"""Which export runs count: per billing period, the newest complete run.

Storage layout of Cost Management exports (Microsoft Learn, "Tutorial: Create and manage Cost
Management exports", file partitioning):
`<container>/<directory>/<export-name>/<YYYYMMDD-YYYYMMDD>/<run-id>/part_<n>_<nnnn>.<csv|csv.gz|parquet>`
and the run's `manifest.json` beside its parts. Runs are found by their manifests, not by parsing paths
(the FinOps toolkit does the same: the path changed between export versions). A month-to-date run
restates the whole month so far: only the newest complete run of a month is read, never a union of runs.
"""

import logging
from collections import defaultdict
from collections.abc import Callable, Iterable
from datetime import date
from pathlib import PurePosixPath

from chargeback_pipeline.sources.cost_export.manifest import MANIFEST_NAME, ExportRun, parse_manifest
from chargeback_pipeline.storage.object_store import ObjectStore

log = logging.getLogger(__name__)
_DATA_SUFFIXES = (".csv", ".csv.gz", ".gz", ".parquet")


def manifests(store: ObjectStore, root: str) -> list[ExportRun]:
    """Every run under `root` that has a manifest (complete or not), oldest first."""
    keys = store.list_keys(root)
    runs = [parse_manifest(key, store.read_bytes(key)) for key in keys if PurePosixPath(key).name == MANIFEST_NAME]
    for folder in _folders_without_manifest(keys):
        log.warning(
            "cost export run folder %s has data but no %s (still being written, or the run failed): ignored",
            store.url(folder),
            MANIFEST_NAME,
        )
    return sorted(runs, key=lambda run: (run.submitted, run.run_id))


def _folders_without_manifest(keys: Iterable[str]) -> list[str]:
    with_data, with_manifest = set(), set()
    for key in keys:
        path = PurePosixPath(key)
        if path.name == MANIFEST_NAME:
            with_manifest.add(str(path.parent))
        elif path.name.lower().endswith(_DATA_SUFFIXES):
            with_data.add(str(path.parent))
    return sorted(with_data - with_manifest)


def newest_complete_runs(
    runs: list[ExportRun], is_complete: Callable[[ExportRun], str | None]
) -> dict[date, ExportRun]:
    """Per billing month, the newest run for which `is_complete` finds no problem (it returns the problem
    as text, or None). Each incomplete run newer than the chosen one is logged with its problem."""
    by_month: defaultdict[date, list[ExportRun]] = defaultdict(list)
    for run in runs:
        by_month[run.billing_month].append(run)
    chosen = {}
    for month, candidates in sorted(by_month.items()):
        for run in sorted(candidates, key=lambda r: (r.submitted, r.run_id), reverse=True):
            problem = is_complete(run)
            if problem is None:
                chosen[month] = run
                break
            log.warning("cost export %s is incomplete (%s): ignored", run.describe(), problem)
    return chosen
