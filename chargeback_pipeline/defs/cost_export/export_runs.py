"""`cost_export_runs`: notices a new complete Cost Management export run and re-rolls exactly the days it
changed (and, through the monthly rollup sensor, their months: the statement reads those days).

Each tick reads the newest complete run of the newest billing month any run covers and of the month
before (Cost Management restates a month until it closes; older days are re-rolled by `chargeback
backfill`), incomplete runs logged and ignored, and fingerprints each day's rows of the pricing file's
resources: every column but the run's id and blob names, so a new run that restates nothing changes no
fingerprint. The cursor keeps the fingerprints it last acted on; a day whose fingerprint is new or
changed (first covered, or restated) gets one run of the daily job for that day: `billed_chargeback`, the
FOCUS export (and hubs copy), budget status and anomalies that state it, and `day_publication`, which
publishes them together (the usage report, not re-run, stays as published).
Days before the partitions start are left out.
"""

import hashlib
import json
from collections import defaultdict
from datetime import date, timedelta

import dagster as dg

from chargeback_pipeline.defs.billing.focus_export import FOCUS_EXPORT_KEY
from chargeback_pipeline.defs.cost_export.billed_chargeback import BILLED_CHARGEBACK_KEY, export_months
from chargeback_pipeline.defs.jobs import AssetJob
from chargeback_pipeline.defs.partitions import Calendar, day_partition_key
from chargeback_pipeline.defs.publishing.day_publication import DAY_PUBLICATION_KEY
from chargeback_pipeline.defs.resources import PricingResource
from chargeback_pipeline.sources.cost_export.source import MonthCharges

_NOT_CONTENT = {"export_run_id", "export_blob"}
# What a day's new export rows change (its chargeback, FOCUS export and hubs copy, and the budget status
# and anomalies read from that chargeback), and the step that publishes them.
REPUBLISHED = [
    BILLED_CHARGEBACK_KEY,
    FOCUS_EXPORT_KEY,
    dg.AssetKey("budget_status"),
    dg.AssetKey("cost_anomalies"),
    DAY_PUBLICATION_KEY,
]


def day_fingerprints(months: dict[date, MonthCharges]) -> dict[str, str]:
    """Partition key of each covered day -> a fingerprint of its export rows' content."""
    rows_by_day: defaultdict[str, list[str]] = defaultdict(list)
    for month in months.values():
        for row in month.rows.to_pylist():
            content = {name: str(value) for name, value in row.items() if name not in _NOT_CONTENT}
            rows_by_day[day_partition_key(row["charge_period_start"].date())].append(
                json.dumps(content, sort_keys=True)
            )
    return {
        day: hashlib.sha256("\n".join(sorted(rows)).encode()).hexdigest()[:32]
        for day, rows in sorted(rows_by_day.items())
    }


def cost_export_runs_sensor(
    calendar: Calendar,
    job: AssetJob,
    minimum_interval_seconds: int = 900,
    default_status: dg.DefaultSensorStatus = dg.DefaultSensorStatus.RUNNING,
) -> dg.SensorDefinition:
    @dg.sensor(
        name="cost_export_runs",
        job=job,
        minimum_interval_seconds=minimum_interval_seconds,
        default_status=default_status,
        description=(
            "Re-publishes the chargeback, FOCUS export and hubs copy of exactly the days a new complete Cost "
            "Management export run covers for the first time or restates."
        ),
    )
    def cost_export_runs(context: dg.SensorEvaluationContext, pricing: PricingResource):
        if pricing.cost_export is None or not pricing.cost_export.is_configured():
            return dg.SkipReason("no cost export is configured (README: Actual cost)")
        seen = json.loads(context.cursor) if context.cursor else {}
        first = day_partition_key(calendar.daily.start.date())
        runs = pricing.cost_export.source().runs()
        if not runs:
            return dg.SkipReason("the cost export has no run with a manifest yet")
        newest = max(run.billing_month for run in runs)
        months = {newest, (newest - timedelta(days=1)).replace(day=1)}
        charges = export_months(pricing, pricing.pricing(), months)
        current = {day: fingerprint for day, fingerprint in day_fingerprints(charges).items() if day >= first}
        changed = {day: fingerprint for day, fingerprint in current.items() if seen.get(day) != fingerprint}
        context.update_cursor(json.dumps({**seen, **current}, sort_keys=True))
        if not changed:
            return dg.SkipReason("no export run covers a new day or restates one")
        return [
            dg.RunRequest(
                # Dagster launches a run key once per sensor: the run id makes a restatement back to earlier
                # numbers (a correction reverted, in a newer run) a run of its own, not a skipped duplicate.
                run_key=f"cost-export:{day}:{fingerprint}:{charges[date.fromisoformat(day).replace(day=1)].run.run_id}",
                partition_key=day,
                asset_selection=REPUBLISHED,
                tags={"chargeback/cost_export_day": fingerprint},
            )
            for day, fingerprint in changed.items()
        ]

    return cost_export_runs
