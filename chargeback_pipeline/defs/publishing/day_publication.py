"""`day_publication` (daily): the one publication decision of each day, taken after every daily output is
staged and before any of them is published.

The usage report, chargeback, FOCUS export, FinOps hubs copy, cost anomalies and budget status of a day are
staged by their assets (`staging.py`). This step measures each (`core.publication_decision`), compares it
with the day's publication manifest (`storage.publication_manifest`: what was published before, not the
files, which can go missing), and then replaces all of the day's files, manifest last, or none:

- a blocked reconciliation holds the day (override: `publish_despite_blocked_reconciliation` with an
  `override_reason`, recorded in `reconciliation_override.json` beside the files, as before);
- an output that would lose a published product, counted rows or total holds the day (override:
  `publish_despite_shrink` with a non-empty `override_reason`, for the whole day, recorded in the
  manifest's `overrides` with the numbers and the run id).

A held day keeps every published file byte for byte; the step fails naming it and why, after the other
days of the run were published. A write that fails while publishing puts back what it already replaced
and names the path.
"""

import json
from collections.abc import Iterable
from datetime import date
from pathlib import PurePosixPath

import dagster as dg

from chargeback_pipeline.core.publication_decision import RULES, OutputSize, measure, shrink
from chargeback_pipeline.defs.metadata import log_run_totals, record_partition
from chargeback_pipeline.defs.partitioned_asset import partitioned_asset
from chargeback_pipeline.defs.partitions import Calendar, day_partition_key, days_in
from chargeback_pipeline.defs.publishing.gate import PublishConfig, blocked_reasons
from chargeback_pipeline.defs.publishing.staging import staged_hub, staged_reports, sweep_finished_runs
from chargeback_pipeline.defs.resources import FocusExportResource, ObjectStoreResource
from chargeback_pipeline.storage import keys
from chargeback_pipeline.storage.parquet_bytes import read_parquet_bytes
from chargeback_pipeline.storage.publication_manifest import Manifest, day_manifest_key, digest, read_manifest
from chargeback_pipeline.storage.publication_staging import (
    PublicationWriteError,
    Replacement,
    StagedStore,
    commit,
)

DAY_PUBLICATION_KEY = dg.AssetKey("day_publication")
HUBS_OUTPUT = "finops_hubs"
RECORDS_OUTPUT = "records"  # what publishing writes beside the outputs (reconciliation off / override)


def output_name(key: str) -> str:
    """`daily/usage_date=.../focus.csv` -> `focus`."""
    return key.rsplit("/", 1)[-1].split(".", 1)[0]


class StagedDay:
    """One day's staged files, in the report target and the hub, with their outputs' sizes."""

    def __init__(self, day: date, reports: StagedStore, hub: StagedStore | None, staged: dict[str, tuple]):
        self.day = day
        prefix = f"daily/usage_date={day.isoformat()}/"
        written, deleted = staged["reports"]
        self.written = [k for k in written if k.startswith(prefix)]
        self.deleted = [k for k in deleted if k.startswith(prefix)]
        hub_written, _ = staged["hubs"]
        self.hub_written = [k for k in hub_written if k.endswith(f"__focus_{day.isoformat()}.parquet")]
        self.reports, self.hub = reports, hub

    def empty(self) -> bool:
        return not (self.written or self.deleted or self.hub_written)

    def sizes(self) -> dict[str, OutputSize]:
        sizes = {}
        for key in self.written:
            if key.endswith(".parquet") and output_name(key) in RULES:
                sizes[output_name(key)] = measure(
                    RULES[output_name(key)], read_parquet_bytes(self.reports.staged_bytes(key))
                )
        for key in self.hub_written:
            sizes[HUBS_OUTPUT] = measure(RULES[HUBS_OUTPUT], read_parquet_bytes(self.hub.staged_bytes(key)))
        return sizes


def manifest_after(
    previous: Manifest | None, period: str, files_by_output: dict, sizes: dict, deleted: Iterable[str] = ()
) -> Manifest:
    """The manifest once this publication is in: the outputs it publishes replaced, the others kept, and
    no file it deletes vouched for any more (an output left without files is no longer listed)."""
    manifest = Manifest(
        period, dict(previous.outputs) if previous else {}, list(previous.overrides) if previous else []
    )
    for name, files in files_by_output.items():
        record = dict(manifest.outputs.get(name, {}))
        record.update(sizes[name].record() if name in sizes else {})
        record["files"] = dict(sorted(files.items()))
        manifest.outputs[name] = record
    gone = set(deleted)
    for name, record in list(manifest.outputs.items()):
        files = record.get("files", {})
        if gone & set(files):
            kept = {key: value for key, value in files.items() if key not in gone}
            if kept:
                manifest.outputs[name] = {**record, "files": kept}
            else:
                del manifest.outputs[name]
    return manifest


def publish_days(
    context: dg.AssetExecutionContext,
    config: PublishConfig,
    lake: ObjectStoreResource,
    reports: ObjectStoreResource,
    focus: FocusExportResource,
):
    decide_and_publish(context, config, lake.lake(), reports.store(), focus.hubs_store())
    yield dg.MaterializeResult()


def decide_and_publish(context: dg.AssetExecutionContext, config: PublishConfig, store, target, hub_store) -> None:
    """Take the publication decision of every day of the run on what the run staged, publish the admitted
    days whole, and fail naming the held ones (after the others were published). Also what the usage
    report runs on its own when no pricing file is configured (the cost assets then fail, and this step
    with them, but usage needs no prices)."""
    sweep_finished_runs(context, target)
    staged_target = staged_reports(context, target)
    hub = staged_hub(context, target, hub_store)
    staged = {
        "reports": staged_target.staged_changes(),
        "hubs": hub.staged_changes() if hub is not None else ([], []),
    }
    override_shrink = config.publish_despite_shrink and bool(config.override_reason.strip())
    held, published, changed_hub_folders = [], [], set()
    try:
        for day in days_in(context.partition_time_window):
            staged_day = StagedDay(day, staged_target, hub, staged)
            if staged_day.empty():
                context.log.info(f"nothing staged for {day}: its published files stay as they are")
                continue
            reconciliation_key = keys.day_key(keys.DAILY_RECONCILIATION, day)
            blocked = blocked_reasons(store.read(reconciliation_key)) if store.store.exists(reconciliation_key) else []
            previous = read_manifest(target, day_manifest_key(day))
            sizes = staged_day.sizes()
            shrunk = [
                message
                for name, size in sizes.items()
                if previous is not None and name in previous.outputs and "rows" in previous.outputs[name]
                for message in [shrink(name, OutputSize.from_record(previous.outputs[name]), size)]
                if message is not None
            ]
            reasons = []
            if blocked and not config.publish_despite_blocked_reconciliation:
                reasons.append(f"reconciliation blocked {len(blocked)} deployment-day(s): {'; '.join(blocked)}")
            if shrunk and not override_shrink:
                needs = (
                    " (publish_despite_shrink needs a non-empty override_reason)"
                    if config.publish_despite_shrink
                    else ""
                )
                reasons.append(f"would replace published outputs with smaller ones: {'; '.join(shrunk)}{needs}")
            if reasons:
                held.append(f"{day}: {' and '.join(reasons)}")
                context.log.error(f"not publishing any output of {day}: {' and '.join(reasons)}")
                continue
            _warn_damaged(context, target, previous)
            replacement, files_by_output = Replacement(), {}
            for key in staged_day.written:
                data = staged_target.staged_bytes(key)
                replacement.add(target, key, data)
                name = output_name(key) if output_name(key) in RULES else RECORDS_OUTPUT
                files_by_output.setdefault(name, {})[key] = digest(data)
            deleted = list(staged_day.deleted)
            for key in deleted:
                replacement.add(target, key, None)
            hub_changed = set()
            for key in staged_day.hub_written:
                data = hub.staged_bytes(key)
                replacement.add(hub.published, key, data)
                files_by_output.setdefault(HUBS_OUTPUT, {})[hub.published.url(key)] = digest(data)
                if not hub.published.exists(key) or hub.published.read_bytes(key) != data:
                    hub_changed.add(str(PurePosixPath(key).parent))
            if blocked:
                record = {"usage_date": str(day), "blocked": blocked, "reason": config.override_reason}
                data = json.dumps(record, indent=2).encode()
                replacement.add(target, keys.override_key(day), data)
                files_by_output.setdefault(RECORDS_OUTPUT, {})[keys.override_key(day)] = digest(data)
            else:
                replacement.add(target, keys.override_key(day), None)
                deleted.append(keys.override_key(day))
            manifest = manifest_after(previous, str(day), files_by_output, sizes, deleted)
            if shrunk:
                manifest.overrides.append(
                    {"run_id": context.run.run_id, "reason": config.override_reason, "shrunk": shrunk}
                )
                context.log.warning(
                    f"publishing {day} despite shrinking: {'; '.join(shrunk)}: {config.override_reason!r}"
                )
            replacement.add(target, day_manifest_key(day), manifest.to_bytes())  # last: the evidence
            try:
                commit(replacement, record_last=True)
            except PublicationWriteError as error:
                raise dg.Failure(f"publishing {day} failed: {error}") from None
            changed_hub_folders |= hub_changed
            published.append(day)
            record_partition(
                context,
                day_partition_key(day),
                {
                    "outputs": dg.MetadataValue.json(
                        {name: size.record() | {"products": len(size.products)} for name, size in sizes.items()}
                    ),
                    "manifest": dg.MetadataValue.path(target.url(day_manifest_key(day))),
                    "published_despite_blocked_reconciliation": blocked and config.override_reason,
                    "published_despite_shrink": shrunk and [f"{m}: {config.override_reason}" for m in shrunk],
                },
            )
        if hub is not None and changed_hub_folders:
            # The hub's month manifest (its signal to ingest the folder) only after the month's day files, and
            # only for a month folder a published day changed. Deleted, then written: the hub reacts to a
            # created blob, and the marker is always empty (an unchanged file is never rewritten).
            hub_written, _ = staged["hubs"]
            replacement = Replacement()
            for key in hub_written:
                if "__focus_" not in key and str(PurePosixPath(key).parent) in changed_hub_folders:
                    replacement.add(hub.published, key, None)
                    replacement.add(hub.published, key, hub.staged_bytes(key))
            try:
                commit(replacement)
            except PublicationWriteError as error:
                raise dg.Failure(f"publishing the FinOps hubs manifest failed: {error}") from None
    finally:
        written, deleted = staged["reports"]
        staged_target.discard(written + deleted)
        if hub is not None:
            hub.discard(staged["hubs"][0] + staged["hubs"][1])
    log_run_totals(context, "day_publication", len(published), {"days held": len(held)})
    if held:
        raise dg.Failure(
            description=(
                f"{len(held)} day(s) not published, none of their outputs replaced (usage report, chargeback, "
                f"FOCUS, FinOps hubs copy, anomalies, budgets): {' | '.join(held)}. If a smaller day is right "
                "(data deleted on purpose, a price lowered), publish it with --publish-despite-shrink REASON (run "
                "config publish_despite_shrink: true and an override_reason); a blocked reconciliation with "
                "--publish-despite-blocked-reconciliation REASON."
            ),
            metadata={"held": held, "published": [str(day) for day in published]},
        )


def _warn_damaged(context: dg.AssetExecutionContext, target, previous: Manifest | None) -> None:
    """A published file that no longer matches its manifest (deleted, cut short) is said, then replaced."""
    if previous is None:
        return
    for key, sha in previous.files().items():
        if "://" in key or key.startswith("/"):
            continue  # a hub file, named by its URL
        if not target.exists(key) or digest(target.read_bytes(key)) != sha:
            context.log.warning(f"published {target.url(key)} is missing or differs from its manifest; replacing it")


def day_publication_asset(calendar: Calendar) -> dg.AssetsDefinition:
    @partitioned_asset(
        DAY_PUBLICATION_KEY,
        calendar.daily,
        deps=["product_usage_report", "billed_chargeback", "focus_export", "cost_anomalies", "budget_status"],
        group_name="reports",
        kinds={"json"},
        description=(
            "The day's one publication decision: every daily output staged by this run (usage report, chargeback, "
            "FOCUS export, FinOps hubs copy, cost anomalies, budget status) is compared with the day's "
            "publication manifest (`daily/usage_date=YYYY-MM-DD/_publication.json`: rows, products and total of "
            "each output as published); all replace the published files, manifest last, or none does. Held: a "
            "blocked reconciliation, or an output losing a product, rows or total (unless overridden, recorded)."
        ),
    )
    def day_publication(
        context: dg.AssetExecutionContext,
        config: PublishConfig,
        lake: ObjectStoreResource,
        reports: ObjectStoreResource,
        focus: FocusExportResource,
    ):
        yield from publish_days(context, config, lake, reports, focus)

    return day_publication
