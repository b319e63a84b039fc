"""`chargeback simulate-cost-export`, run as a user runs it: the simulated tenant's export written in
Microsoft's layout where the pipeline reads it, one month-to-date run per month, lagging two days."""

from datetime import date

import dagster as dg
import pytest

from chargeback_pipeline.core.billing.pricing import load_pricing
from chargeback_pipeline.definitions import build_resources
from chargeback_pipeline.settings import SettingsError, load_settings
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


def test_the_settings_reach_the_resource_and_the_secret_only_as_an_env_var(monkeypatch):
    assert build_resources(load_settings())["pricing"].cost_export is None  # none set: every day an estimate
    monkeypatch.setenv("CHARGEBACK_COST_EXPORT_CONNECTION_STRING", "UseDevelopmentStorage=true")
    monkeypatch.setenv("CHARGEBACK_COST_EXPORT_ROOT_FOLDER", "billingAccounts/1234")
    monkeypatch.setenv("CHARGEBACK_COST_VARIANCE_WARN_SHARE", "0.05")
    export = build_resources(load_settings())["pricing"].cost_export
    assert isinstance(export.blob_connection_string, dg.EnvVar)
    assert (export.container, export.root_folder, export.variance_warn_share) == (
        "msexports",
        "billingAccounts/1234",
        "0.05",
    )
    monkeypatch.setenv("CHARGEBACK_COST_EXPORT_BLOB_ACCOUNT_URL", "http://exports.example.com")
    with pytest.raises(SettingsError, match="CHARGEBACK_COST_EXPORT_BLOB_ACCOUNT_URL"):
        load_settings()
