"""The cost export as the pipeline reads it: per billing month, the newest complete run's rows of the
Azure OpenAI resources the pricing file names."""

from dataclasses import dataclass
from datetime import date

import pyarrow as pa

from chargeback_pipeline.sources.cost_export.manifest import ExportRun
from chargeback_pipeline.sources.cost_export.rows import IncompleteRunError, read_run
from chargeback_pipeline.sources.cost_export.runs import manifests, newest_complete_runs
from chargeback_pipeline.storage.object_store import ObjectStore


@dataclass(frozen=True)
class MonthCharges:
    run: ExportRun
    rows: pa.Table  # EXPORT_CHARGE_SCHEMA

    def days(self) -> list[date]:
        """The days the run has rows for (of the named resources): the days it covers."""
        starts = self.rows["charge_period_start"].to_pylist()
        return sorted({start.date() for start in starts})


class CostExportSource:
    """A Cost Management export's storage: a Blob container or a local folder standing in for one
    (`store`), and the export's root folder in it (`root`: the export's directory, or the directory and
    export name)."""

    def __init__(self, store: ObjectStore, root: str = ""):
        self.store = store
        self.root = root.strip("/")

    def runs(self) -> list[ExportRun]:
        """Every run with a manifest, oldest first (a folder without one is logged and left out)."""
        return manifests(self.store, self.root)

    def month_charges(self, resource_ids: set[str], months: set[date] | None = None) -> dict[date, MonthCharges]:
        """Per billing month (only `months`, first days, when given), the newest complete run and its rows of
        `resource_ids` (case-insensitive)."""
        read: dict[str, pa.Table] = {}

        def problem(run: ExportRun) -> str | None:
            if run.refusal is not None:  # the newest run of a month read: it must be usable
                raise run.refusal
            try:
                read[run.manifest_key] = read_run(self.store, run, resource_ids)
            except IncompleteRunError as error:
                return str(error)
            return None

        runs = [run for run in self.runs() if months is None or run.billing_month in months]
        chosen = newest_complete_runs(runs, problem)
        return {month: MonthCharges(run, read[run.manifest_key]) for month, run in chosen.items()}
