"""The code location loads cleanly and explains itself in the UI: no warnings from our code, every asset
described, owned, kinded and grouped, declared with what all assets share, every partitioned asset run by
the schedule or the sensor, and Dagster's own validator passes."""

import json
import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

import chargeback_pipeline
from chargeback_pipeline.definitions import build_definitions
from chargeback_pipeline.defs.partitioned_asset import OWNERS
from chargeback_pipeline.defs.partitions import Calendar
from chargeback_pipeline.settings import load_settings
from chargeback_pipeline_tests.conftest import REPO

SETTINGS = load_settings()
defs = build_definitions(SETTINGS)
CALENDAR = Calendar.starting(SETTINGS.partitions_start)

FRESH_IMPORT = """
import json, warnings
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    import dagster as dg
    from chargeback_pipeline.definitions import defs
    dg.Definitions.validate_loadable(defs())
print(json.dumps([[w.category.__name__, w.filename, w.lineno, str(w.message)] for w in caught]))
"""
PACKAGE = str(Path(chargeback_pipeline.__file__).parent)


def test_definitions_load_without_warnings_from_our_code(tmp_path):
    loaded = subprocess.run(
        [sys.executable, "-c", FRESH_IMPORT],
        cwd=tmp_path,  # not the repository: warnings must not depend on where the code location starts
        env={**os.environ, "DAGSTER_HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        check=True,
    )
    warnings = json.loads(loaded.stdout.strip().splitlines()[-1])

    assert [w for w in warnings if w[1].startswith(PACKAGE)] == []


SPECS = sorted(defs.resolve_all_asset_specs(), key=lambda spec: spec.key.to_user_string())  # same order in workers


@pytest.mark.parametrize("spec", SPECS, ids=lambda spec: spec.key.to_user_string())
def test_every_asset_explains_itself_in_the_ui(spec):
    assert spec.description and len(spec.description) >= 40
    assert spec.owners
    assert spec.kinds
    assert spec.group_name and spec.group_name != "default"


def test_every_asset_is_declared_with_what_all_share():
    """`defs/partitioned_asset.py` says it once: partitioned, one ranged run per backfill, owned by the
    FinOps data team, its checks partitioned like it. An asset declared with bare `dg.asset` fails here."""
    assets_defs = [a for a in defs.assets if isinstance(a, dg.AssetsDefinition)]

    assert sorted(key.to_user_string() for a in assets_defs for key in a.keys) == [
        spec.key.to_user_string() for spec in SPECS
    ]
    for assets_def in assets_defs:
        name = assets_def.node_def.name
        assert assets_def.partitions_def is not None, name
        assert assets_def.backfill_policy == dg.BackfillPolicy.single_run(), name
        assert all(spec.owners == OWNERS for spec in assets_def.specs), name
        for check in assets_def.check_specs:
            assert check.partitions_def == assets_def.partitions_def, check.key.to_user_string()


def test_every_partitioned_asset_is_run_by_the_schedule_or_a_sensor():
    specs = defs.resolve_all_asset_specs()
    automation = {
        "hourly_attribution": defs.resolve_schedule_def("hourly_attribution"),
        "daily_rollup": defs.resolve_sensor_def("daily_rollup"),
        "monthly_rollup": defs.resolve_sensor_def("monthly_rollup"),
    }
    partitions = {
        "hourly_attribution": CALENDAR.hourly,
        "daily_rollup": CALENDAR.daily,
        "monthly_rollup": CALENDAR.monthly,
    }

    for name, definition in automation.items():
        selected = defs.resolve_job_def(definition.job_name).asset_layer.selected_asset_keys
        assert selected == {spec.key for spec in specs if spec.partitions_def == partitions[name]}, name
        assert definition.default_status.value == "RUNNING", name
    assert {spec.key for spec in specs if spec.partitions_def} == {
        key for d in automation.values() for key in defs.resolve_job_def(d.job_name).asset_layer.selected_asset_keys
    }  # nothing is left to a human


def test_dagster_validates_the_code_location(tmp_path):
    (tmp_path / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    validated = subprocess.run(
        [str(Path(sys.executable).parent / "dagster"), "definitions", "validate", "-w", "workspace.yaml"],
        cwd=REPO,
        env={**os.environ, "DAGSTER_HOME": str(tmp_path)},
        capture_output=True,
        text=True,
    )

    assert validated.returncode == 0, validated.stdout + validated.stderr
    assert "All code locations passed validation" in validated.stdout + validated.stderr


def test_dg_check_defs_passes(tmp_path):
    (tmp_path / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    venv = Path(sys.executable).parent.parent
    checked = subprocess.run(
        [str(venv / "bin" / "dg"), "check", "defs"],
        cwd=REPO,
        env={**os.environ, "DAGSTER_HOME": str(tmp_path), "VIRTUAL_ENV": str(venv)},
        capture_output=True,
        text=True,
    )

    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "All definitions loaded successfully" in checked.stdout + checked.stderr
