"""Asset checks judged partition by partition, and their run-level summary.

A ranged run (hours or days of a backfill, the schedule's lookback) materializes many partitions at once.
Its checks are partitioned like their asset (`spec`), and the asset judges every partition on that
partition's own numbers (the judging functions in `*/checks.py` stay pure), emitting one
`AssetCheckEvaluation` per partition with the partition named (`evaluations`): the UI shows each hour's
or day's result beside it, and a ranged run leaves no check row "skipped". Empty values (an hour with no
incomplete hour, no mismatch) are left out, not shown as `[]`.

`run_level` folds a run's evaluations of one check back into one, for the command line's summary (one
paragraph per failed check and run): passed only if every partition passed, the worst failure's
severity, description and tables, and the numbers added up (counts, tokens, costs), combined (lists,
counts by reason) or kept (thresholds), by the rules below.
"""

import warnings
from collections.abc import Iterable, Iterator, Mapping, Sequence
from decimal import Decimal

import dagster as dg

from chargeback_pipeline.defs.dagster_internals import CheckTargetMaterialization, one_event_per_millisecond
from chargeback_pipeline.defs.metadata import is_empty

# Metadata that is the same for every partition (configuration), or the largest of them, or recomputed
# from the added-up numbers; everything else is added up (numbers), joined (lists), merged (counts by
# reason) or taken from the worst partition (text, tables).
SAME = frozenset(
    {
        "threshold_percent",
        "minimum_llm_requests_judged",
        "columns_checked",
        "gates_publication",
        "publication_gate",
        "reconciled",
        "reason",
        "currency",
    }
)
LARGEST_PREFIX = "max_"


def _percent(part: float, whole: float) -> float:
    return round(100.0 * part / whole, 3) if whole else 0.0


# name -> how to recompute it from the run's added-up metadata
DERIVED = {"quarantined_percent": lambda m: _percent(m.get("quarantined_rows", 0), m.get("rows_judged", 0))}


def spec(name: str, asset: dg.AssetKey, partitions_def: dg.PartitionsDefinition, description: str) -> dg.AssetCheckSpec:
    """A check partitioned like its asset: one result per partition."""
    with warnings.catch_warnings():
        # Partitioned checks are a Dagster preview (1.13): they are what makes a ranged run's results
        # per partition. The warning says so once per check at load; the code location must load silently
        # (test_definitions.py), so exactly that category is silenced, here only.
        warnings.simplefilter("ignore", category=dg.PreviewWarning)
        return dg.AssetCheckSpec(name, asset=asset, description=description, partitions_def=partitions_def)


def _targets(
    context: dg.AssetExecutionContext, keys: set[dg.AssetKey], partitions: Sequence[str]
) -> dict[tuple[dg.AssetKey, str], CheckTargetMaterialization]:
    """This run's materialization of each (asset, partition): what each evaluation judged."""
    found = {}
    for key in keys:
        records = context.instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=key, asset_partitions=list(partitions)), limit=len(partitions)
        ).records
        for record in records:  # newest first: this run's
            if record.run_id == context.run.run_id:
                found.setdefault(
                    (key, record.partition_key),
                    CheckTargetMaterialization(
                        storage_id=record.storage_id, run_id=record.run_id, timestamp=record.timestamp
                    ),
                )
    return found


def evaluations(
    context: dg.AssetExecutionContext, judged: Iterable[tuple[str, dg.AssetCheckResult]]
) -> Iterator[dg.AssetCheckEvaluation | dg.Output]:
    """One evaluation per (partition, check result) of the run's selected checks, naming its partition,
    then each selected check's (empty) output once, which Dagster expects of a step with checks."""
    judged = list(judged)
    one_event_per_millisecond(context.log)  # each partition's result its own point in the check's plot
    selected = context.selected_asset_check_keys
    partitions = sorted({partition for partition, _ in judged})
    targets = _targets(context, {result.asset_key for _, result in judged}, partitions) if partitions else {}
    for partition, result in judged:
        key = dg.AssetCheckKey(result.asset_key, result.check_name)
        if key not in selected:
            continue
        yield dg.AssetCheckEvaluation(
            asset_key=result.asset_key,
            check_name=result.check_name,
            passed=result.passed,
            metadata={name: entry for name, entry in result.metadata.items() if not is_empty(entry.value)},
            severity=result.severity,
            description=result.description,
            partition=partition,
            target_materialization_data=targets.get((result.asset_key, partition)),
        )
    for key in sorted(selected & set(context.assets_def.check_keys), key=lambda k: k.to_user_string()):
        yield dg.Output(None, output_name=context.assets_def.get_output_name_for_asset_check_key(key))


def _combined(name: str, values: list, representative):
    first = values[0]
    if name in SAME:
        return first
    if isinstance(first, bool):
        return representative
    if isinstance(first, int | float | Decimal):
        if name.startswith(LARGEST_PREFIX):
            return max(values)
        total = sum(values)
        return round(total, 6) if isinstance(total, float) else total
    if isinstance(first, list):
        items = [item for value in values for item in value]
        try:
            return list(dict.fromkeys(items))  # each once (a deployment without metrics in many hours)
        except TypeError:  # unhashable items: all of them
            return items
    if isinstance(first, Mapping) and all(isinstance(v, int) for value in values for v in value.values()):
        counts: dict = {}
        for value in values:
            for key, count in value.items():
                counts[key] = counts.get(key, 0) + count
        return dict(sorted(counts.items()))
    return representative


def _severity_rank(evaluation: dg.AssetCheckEvaluation) -> int:
    if evaluation.passed:
        return 3
    if not judged(evaluation):  # could not judge (too little history): milder than any failure found
        return 2
    return 0 if evaluation.severity == dg.AssetCheckSeverity.ERROR else 1


def judged(evaluation: dg.AssetCheckEvaluation) -> bool:
    """False for a check that could not judge its partition (metadata `judged` false)."""
    entry = evaluation.metadata.get("judged")
    return entry is None or entry.value is not False


def run_level(partitioned: Sequence[dg.AssetCheckEvaluation]) -> dg.AssetCheckEvaluation:
    """One check's evaluations of a run (one per partition) as one, with no partition (the run's range)."""
    if len(partitioned) == 1 and partitioned[0].partition is None:
        return partitioned[0]
    worst = min(partitioned, key=_severity_rank)  # the first of the most severe failures, else the first
    # In the judge's order: the worst partition's (a failure names everything), then any others'.
    names = list(dict.fromkeys(name for evaluation in (worst, *partitioned) for name in evaluation.metadata))
    metadata = {}
    for name in names:
        entries = [e.metadata[name] for e in partitioned if name in e.metadata]
        representative = worst.metadata.get(name, entries[-1])
        if isinstance(representative, dg.MarkdownMetadataValue | dg.PathMetadataValue | dg.TextMetadataValue):
            metadata[name] = representative
            continue
        combined = _combined(name, [entry.value for entry in entries], representative.value)
        metadata[name] = dg.MetadataValue.json(combined) if isinstance(combined, Mapping) else combined
    for name, derive in DERIVED.items():
        if name in metadata:
            metadata[name] = derive({k: v for k, v in metadata.items() if isinstance(v, int | float)})
    return dg.AssetCheckEvaluation(
        asset_key=worst.asset_key,
        check_name=worst.check_name,
        passed=all(e.passed for e in partitioned),
        metadata=metadata,
        severity=worst.severity,
        description=worst.description,
    )


def run_level_by_check(evaluations_of_run: Iterable[dg.AssetCheckEvaluation]) -> list[dg.AssetCheckEvaluation]:
    """A run's evaluations, one per check (`run_level`), in the order the run first judged each."""
    grouped: dict[dg.AssetCheckKey, list[dg.AssetCheckEvaluation]] = {}
    for evaluation in evaluations_of_run:
        grouped.setdefault(evaluation.asset_check_key, []).append(evaluation)
    return [run_level(group) for group in grouped.values()]
