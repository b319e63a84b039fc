"""`chargeback simulate-cost-export`, run as a user runs it: the simulated tenant's export written in
Microsoft's layout where the pipeline reads it, one month-to-date run per month, lagging two days."""

from datetime import date

from chargeback_pipeline.core.billing.pricing import load_pricing
from chargeback_pipeline.sources.cost_export.source import CostExportSource
from chargeback_pipeline.storage.object_store import LocalObjectStore
from chargeback_pipeline_tests.conftest import REPO
from chargeback_pipeline_tests.test_cli import chargeback


def test_the_simulated_export_lands_where_the_pipeline_reads_it(tmp_path):
    export = tmp_path / "msexports"
    done = chargeback(
        tmp_path,
        "simulate-cost-export",
        "--as-of",
        "2026-11-04",
        CHARGEBACK_COST_EXPORT_DIR=export,
        CHARGEBACK_PARTITIONS_START="2026-11-01",
        CHARGEBACK_SIMULATED_REQUESTS_PER_HOUR=20,
    )
    assert done.returncode == 0, done.stderr
    assert "covers 2026-11-01..2026-11-02" in done.stdout
    resources = {b.resource_id for b in load_pricing(REPO / "pricing.example.yaml").backends.values()}
    month = CostExportSource(LocalObjectStore(export)).month_charges(resources)[date(2026, 11, 1)]
    assert month.days() == [date(2026, 11, 1), date(2026, 11, 2)]
    assert month.run.run_id == "simulated-202611-20261104"


def test_without_a_location_it_says_what_to_set(tmp_path):
    done = chargeback(tmp_path, "simulate-cost-export", "--as-of", "2026-11-04")
    assert done.returncode == 1
    assert "set CHARGEBACK_COST_EXPORT_DIR" in done.stderr
