"""`chargeback simulate-cost-export` and `chargeback discover --write`, run as a user runs them: the
simulated tenant's export written in Microsoft's layout where the pipeline reads it, one month-to-date run
per month, lagging two days; the pricing-file skeleton's `meters` filled from it."""

from datetime import UTC, date, datetime, timedelta

import dagster as dg
import pytest
import yaml

from chargeback_pipeline.core.billing.pricing import load_pricing
from chargeback_pipeline.definitions import build_resources
from chargeback_pipeline.defs.cost_export.simulated_terms import simulated_terms
from chargeback_pipeline.settings import SettingsError, load_settings
from chargeback_pipeline.sources.cost_export.source import CostExportSource
from chargeback_pipeline.sources.simulated import SimulatedSource, SimulationProfile
from chargeback_pipeline.sources.simulated.cost_export import write_simulated_run
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


def test_discover_write_fills_the_meters_mapping_from_the_export(tmp_path):
    """`chargeback discover --write`, as a user runs it with the export configured: the skeleton's `meters`
    holds every meter the export bills the discovered resources on, kind and model read from the name,
    FILL_IN where the name does not say (the embedding meter names no direction), which check-pricing
    then names."""
    today = datetime.now(UTC).date()
    settings = {
        "CHARGEBACK_COST_EXPORT_DIR": tmp_path / "msexports",
        "CHARGEBACK_PARTITIONS_START": (today - timedelta(days=4)).isoformat(),
        "CHARGEBACK_SIMULATED_REQUESTS_PER_HOUR": 20,
    }
    assert chargeback(tmp_path, "simulate-cost-export", **settings).returncode == 0
    done = chargeback(tmp_path, "discover", "--days", "3", "--write", "pricing.yaml", **settings)
    assert done.returncode == 0, done.stderr
    assert "with the 8 meter(s) the cost export bills them on" in done.stdout
    meters = yaml.safe_load((tmp_path / "pricing.yaml").read_text())["meters"]
    assert meters["Global Provisioned Managed Unit"] == {"kind": "provisioned"}
    assert meters["gpt 4.1 Inpt glbl 1M Tokens"] == {"kind": "input", "model": "gpt-4.1"}
    assert meters["gpt 4o cchd Inpt glbl 1M Tokens"] == {"kind": "cached_input", "model": "gpt-4o"}
    assert meters["gpt 4.1 Outp glbl 1M Tokens"] == {"kind": "output", "model": "gpt-4.1"}
    assert meters["text-embedding-3-large Tokens"] == {"kind": "FILL_IN", "model": "text-embedding-3-large"}
    checked = chargeback(tmp_path, "check-pricing", "pricing.yaml")
    assert checked.returncode == 1 and "meters.text-embedding-3-large Tokens.kind" in checked.stderr


def test_discover_without_an_export_writes_no_meters(tmp_path):
    done = chargeback(tmp_path, "discover", "--days", "1", "--write", "pricing.yaml")
    assert done.returncode == 0, done.stderr
    assert "meters" not in yaml.safe_load((tmp_path / "pricing.yaml").read_text())


def test_verify_simulated_checks_an_actual_day_against_the_simulators_own_export(tmp_path):
    """As a user runs it: the export lands, the day is backfilled (actual), `verify-simulated` compares each
    product's EffectiveCost and BilledCost with the simulator's own export shared out by its own requests.
    A run restating the day (the export no longer what the simulator bills) is caught."""
    day = "2026-11-02"
    settings = {
        "CHARGEBACK_COST_EXPORT_DIR": tmp_path / "msexports",
        "CHARGEBACK_PARTITIONS_START": "2026-11-01",
        "CHARGEBACK_SIMULATED_REQUESTS_PER_HOUR": 50,
    }
    assert chargeback(tmp_path, "simulate-cost-export", "--as-of", "2026-11-05", **settings).returncode == 0
    backfilled = chargeback(tmp_path, "backfill", day, **settings)
    assert backfilled.returncode == 0, backfilled.stderr
    verified = chargeback(tmp_path, "verify-simulated", day, **settings)
    assert verified.returncode == 0, verified.stderr
    assert "actual cost (EffectiveCost and BilledCost) per product matches the simulator's own cost export" in (
        verified.stdout
    )

    # A newer run restating the day's pay-as-you-go usage a hundredfold: published, and no longer the bill.
    source = SimulatedSource(SimulationProfile(requests_per_hour=50))
    prices = load_pricing(REPO / "pricing.example.yaml")
    store = LocalObjectStore(tmp_path / "msexports")
    write_simulated_run(
        store, "", source, lambda d: simulated_terms(prices, d), date(2026, 11, 6), "restated",
        restated={date(2026, 11, 2): 100},
    )  # fmt: skip
    assert chargeback(tmp_path, "backfill", day, **settings).returncode == 0
    caught = chargeback(tmp_path, "verify-simulated", day, **settings)
    assert caught.returncode == 1 and f"MISMATCH in money on {day}: effective " in caught.stderr
