"""The named jobs: what every run of the pipeline runs, so the UI's runs list, timeline and Target column
say which step a run was, not `__ephemeral_asset_job__`.

- `1_hourly_attribution_job` (hourly partitions): landing, attribution, hourly reconciliation. Run by the
  `hourly_attribution` schedule and by `chargeback backfill`.
- `2_daily_rollup_job` (daily partitions): rollup, daily reconciliation, report, chargeback, FOCUS export.
  Run by the `daily_rollup` sensor and by `chargeback backfill`.
- `3_monthly_statement_job` (monthly partitions): the monthly statements. Run by the `monthly_rollup` sensor
  and by `chargeback backfill`.

The number is the step's order, and it makes the name sort before Dagster's `__ASSET_JOB` (digits before
`_`): Materialize on an asset page (and a backfill launched there) runs the first job, in name order, that
holds every selected asset (Dagster UI 1.13, `LaunchAssetExecutionButton.getCommonJob` over the asset's
`jobNames`, which Dagster sorts), so it runs the asset's named job, not the jobless `__ASSET_JOB`.

Each selects the assets of one partitioning (and their checks), so a new asset joins its job by being
defined; a ranged run of a job (the `dagster/asset_partition_range_*` tags) covers many partitions in one run.
"""

from collections.abc import Sequence
from dataclasses import dataclass

import dagster as dg

# What `dg.define_asset_job` returns (Dagster does not export its name).
from chargeback_pipeline.defs.dagster_internals import AssetJob
from chargeback_pipeline.defs.partitions import partitioned_keys

# The code location workspace.yaml loads (a `python_module` location is named after its module) and the
# repository a `dg.Definitions` becomes there: the label the UI's runs list filters by code location
# (Dagster's hidden `.dagster/repository` tag, `<repository>@<location>`). Runs the UI launches get it from
# Dagster; runs started in this process (`chargeback backfill`) carry it as a tag, and once finished the
# origin the Overview timeline draws runs by (`dagster_internals.record_code_location`).
CODE_LOCATION = "chargeback_pipeline.definitions"
REPOSITORY = "__repository__"  # the name Dagster gives the repository of a `dg.Definitions`
CODE_LOCATION_TAGS = {".dagster/repository": f"{REPOSITORY}@{CODE_LOCATION}"}

HOURLY_JOB = "1_hourly_attribution_job"
DAILY_JOB = "2_daily_rollup_job"
MONTHLY_JOB = "3_monthly_statement_job"
JOB_NAMES = (HOURLY_JOB, DAILY_JOB, MONTHLY_JOB)
DESCRIPTIONS = {
    HOURLY_JOB: (
        "Lands the hours' APIM logs and deployment metrics, attributes every request to its product and "
        "reconciles each hour with Azure Monitor. One run covers a range of hours."
    ),
    DAILY_JOB: (
        "Rolls days up from their 24 hours: per-product usage, the daily reconciliation (which gates "
        "publication), the published usage report, the chargeback and its FOCUS export. One run covers a "
        "range of days."
    ),
    MONTHLY_JOB: "States each month per product from its published daily chargebacks (the month in progress too).",
}


def asset_job(name: str, assets: Sequence, partitions_def: dg.PartitionsDefinition) -> AssetJob:
    """The job of every asset partitioned by `partitions_def` (with their checks); the job is partitioned like
    them (Dagster infers it from the assets)."""
    return dg.define_asset_job(
        name,
        selection=dg.AssetSelection.assets(*partitioned_keys(assets, partitions_def)),
        description=DESCRIPTIONS.get(name),
    )


@dataclass(frozen=True)
class PipelineJobs:
    hourly: AssetJob
    daily: AssetJob
    monthly: AssetJob

    @classmethod
    def of(cls, assets: Sequence) -> "PipelineJobs":
        """The three jobs, on the partitions the assets themselves use (hours, days, months)."""
        kinds = (dg.HourlyPartitionsDefinition, dg.DailyPartitionsDefinition, dg.MonthlyPartitionsDefinition)
        partitions = []
        for kind in kinds:
            found = {a.partitions_def for a in assets if isinstance(a.partitions_def, kind)}
            if len(found) != 1:
                raise ValueError(f"the assets must share one {kind.__name__}, found {len(found)}")
            partitions.append(found.pop())
        return cls(*(asset_job(name, assets, p) for name, p in zip(JOB_NAMES, partitions, strict=True)))

    def all(self) -> list[AssetJob]:
        return [self.hourly, self.daily, self.monthly]


def with_jobs(definitions: dg.Definitions) -> dg.Definitions:
    """`definitions` with the three named jobs, added when it lacks them (definitions built by hand, as the
    tests build them, hold only assets and resources)."""
    names = {job.name for job in definitions.jobs or []}
    if set(JOB_NAMES) <= names:
        return definitions
    return dg.Definitions.merge(definitions, dg.Definitions(jobs=PipelineJobs.of(list(definitions.assets)).all()))
