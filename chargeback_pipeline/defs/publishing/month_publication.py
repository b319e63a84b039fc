"""`month_publication` (monthly): the one publication decision of each month's outputs (statement, PTU
rightsizing and what-if), taken after they are staged, like `day_publication` for a day.

The statement is stated from published days only (their manifests), so it follows the days' decisions;
this step compares every staged monthly output with the month's manifest
(`monthly/month=YYYY-MM/_publication.json`) and replaces all of them, manifest last, or none. A month
whose output would lose a product, rows or total is held, unless a day of the month was published smaller
by an override since the month was last published (the statement follows it, recorded), a day's cost
basis changed since (it turned actual, or a new export run restated it: recorded), or the run has its own
override (`publish_despite_shrink` with an `override_reason`).
"""

from datetime import date

import dagster as dg

from chargeback_pipeline.core.periods import days_of_month
from chargeback_pipeline.core.publication_decision import RULES, OutputSize, measure, shrink
from chargeback_pipeline.defs.metadata import record_partition
from chargeback_pipeline.defs.partitioned_asset import partitioned_asset
from chargeback_pipeline.defs.partitions import Calendar, month_partition_key, months_in
from chargeback_pipeline.defs.publishing.day_publication import manifest_after, output_name
from chargeback_pipeline.defs.publishing.gate import PublishConfig
from chargeback_pipeline.defs.publishing.staging import staged_reports
from chargeback_pipeline.defs.resources import ObjectStoreResource
from chargeback_pipeline.storage.object_store import ObjectStore
from chargeback_pipeline.storage.parquet_bytes import read_parquet_bytes
from chargeback_pipeline.storage.publication_manifest import (
    day_manifest_key,
    digest,
    month_manifest_key,
    read_manifest,
)
from chargeback_pipeline.storage.publication_staging import PublicationWriteError, Replacement, commit

MONTH_PUBLICATION_KEY = dg.AssetKey("month_publication")
RECORDS_OUTPUT = "records"


def day_bases(target: ObjectStore, month: date) -> list[str]:
    """`<day>=<cost basis>` of each published day's chargeback (README "Actual cost"): a day turning actual,
    or restated by a new export run, changes its month's money on purpose."""
    bases = []
    for day in days_of_month(month):
        manifest = read_manifest(target, day_manifest_key(day))
        basis = manifest.outputs.get("chargeback", {}).get("basis") if manifest else None
        bases += [f"{day}={basis}"] if basis else []
    return bases


def day_overrides(target: ObjectStore, month: date) -> list[str]:
    """The run ids of every shrink override of the month's published days."""
    runs = []
    for day in days_of_month(month):
        manifest = read_manifest(target, day_manifest_key(day))
        runs += [override["run_id"] for override in manifest.overrides] if manifest else []
    return runs


def publish_months(context: dg.AssetExecutionContext, config: PublishConfig, reports: ObjectStoreResource) -> None:
    target = reports.store()
    staged = staged_reports(context, target)
    written, deleted = staged.staged_changes()
    override = config.publish_despite_shrink and bool(config.override_reason.strip())
    held = []
    try:
        for month in months_in(context.partition_time_window):
            prefix = f"monthly/month={month:%Y-%m}/"
            month_keys = [k for k in written if k.startswith(prefix)]
            if not month_keys:
                continue
            sizes = {
                output_name(k): measure(RULES[output_name(k)], read_parquet_bytes(staged.staged_bytes(k)))
                for k in month_keys
                if k.endswith(".parquet") and output_name(k) in RULES
            }
            previous = read_manifest(target, month_manifest_key(month))
            shrunk = [
                message
                for name, size in sizes.items()
                if previous is not None and "rows" in previous.outputs.get(name, {})
                for message in [shrink(name, OutputSize.from_record(previous.outputs[name]), size)]
                if message is not None
            ]
            days_overridden = day_overrides(target, month)
            new_day_overrides = sorted(
                set(days_overridden)
                - set(previous.outputs.get(RECORDS_OUTPUT, {}).get("day_overrides", []) if previous else [])
            )
            bases = day_bases(target, month)
            previous_bases = previous.outputs.get(RECORDS_OUTPUT, {}).get("day_bases", []) if previous else []
            rebased = sorted(set(bases) - set(previous_bases))
            if shrunk and not override and not new_day_overrides and not rebased:
                held.append(f"{month:%Y-%m}: would replace published outputs with smaller ones: {'; '.join(shrunk)}")
                context.log.error(f"not publishing any output of {month:%Y-%m}: {held[-1]}")
                continue
            replacement, files = Replacement(), {}
            for key in month_keys:
                data = staged.staged_bytes(key)
                replacement.add(target, key, data)
                name = output_name(key) if output_name(key) in RULES else "statement"
                files.setdefault(name, {})[key] = digest(data)
            # What the month no longer has (its statement by caller, once callers are off) is unpublished with
            # it, not left beside the new statement for `chargeback report` and readers to find.
            month_deleted = [key for key in deleted if key.startswith(prefix)]
            for key in month_deleted:
                replacement.add(target, key, None)
            manifest = manifest_after(previous, f"{month:%Y-%m}", files, sizes, month_deleted)
            manifest.outputs[RECORDS_OUTPUT] = {
                "day_overrides": sorted(set(days_overridden)),
                "day_bases": bases,
                "files": {},
            }
            if shrunk:
                reason = (
                    config.override_reason
                    if override
                    else f"follows the day override(s) of run(s) {', '.join(new_day_overrides)}"
                    if new_day_overrides
                    else f"follows the cost basis of its days: {', '.join(rebased)}"
                )
                manifest.overrides.append({"run_id": context.run.run_id, "reason": reason, "shrunk": shrunk})
            replacement.add(target, month_manifest_key(month), manifest.to_bytes())
            try:
                commit(replacement, record_last=True)
            except PublicationWriteError as error:
                raise dg.Failure(f"publishing {month:%Y-%m} failed: {error}") from None
            record_partition(
                context,
                month_partition_key(month),
                {
                    "outputs": dg.MetadataValue.json(
                        {n: s.record() | {"products": len(s.products)} for n, s in sizes.items()}
                    ),
                    "manifest": dg.MetadataValue.path(target.url(month_manifest_key(month))),
                },
            )
    finally:
        staged.discard(written + deleted)
    if held:
        raise dg.Failure(
            f"{len(held)} month(s) not published, none of their outputs replaced: {' | '.join(held)}. If right, "
            "publish with --publish-despite-shrink REASON."
        )
    yield dg.MaterializeResult()


def month_publication_asset(calendar: Calendar) -> dg.AssetsDefinition:
    @partitioned_asset(
        MONTH_PUBLICATION_KEY,
        calendar.monthly,
        deps=["monthly_statement", "ptu_rightsizing"],
        group_name="costs",
        kinds={"json"},
        description=(
            "The month's one publication decision: the statement and the PTU rightsizing staged by this run are "
            "compared with the month's publication manifest (`monthly/month=YYYY-MM/_publication.json`); all "
            "replace the published files, manifest last, or none does."
        ),
    )
    def month_publication(context: dg.AssetExecutionContext, config: PublishConfig, reports: ObjectStoreResource):
        yield from publish_months(context, config, reports)

    return month_publication
