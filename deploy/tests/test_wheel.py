"""The package as a wheel, installed non-editable into a fresh virtual environment outside the checkout and
run from an empty folder: everything it reads (SQL models and their docs, KQL, the statement template,
the default pricing file) must be inside it. Slow (a wheel build and an install): `make wheel-test`."""

import subprocess
import zipfile

import pytest

from deploy.tests.installed import CHECKOUT_BIN, build_wheel, clean_environment, installed_venv, published_files

pytestmark = pytest.mark.slow
DAY = "2026-11-20"
# A small simulated day with the defaults otherwise (pricing file, lake and report folders); hours are judged
# for completeness and reconciled only at real volumes, as in test_cli.py, so chance decides no check.
SMALL_DAY = {
    "CHARGEBACK_SIMULATED_REQUESTS_PER_HOUR": "50",
    "CHARGEBACK_GATEWAY_COMPLETENESS_MIN_REQUESTS": "100",
    "CHARGEBACK_RECONCILIATION_MIN_TOKENS": str(10**9),
}


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    root = tmp_path_factory.mktemp("installed")
    wheel = build_wheel(root / "dist")
    return wheel, installed_venv(root, wheel)


def test_the_wheel_carries_the_files_the_package_reads(installed):
    wheel, _ = installed
    names = set(zipfile.ZipFile(wheel).namelist())

    assert "chargeback_pipeline/pricing.example.yaml" in names
    assert "chargeback_pipeline/dbt_like_sql/marts/fct_attributed_requests.sql" in names
    assert "chargeback_pipeline/dbt_like_sql/staging/_apim__models.yml" in names
    assert "chargeback_pipeline/sources/log_analytics/gateway_logs.kql" in names
    assert "chargeback_pipeline/core/billing/statement.html.j2" in names
    assert not any(name.startswith("chargeback_pipeline_tests/") for name in names)


def test_a_backfill_with_the_defaults_from_an_empty_folder_publishes_what_the_checkout_does(installed, tmp_path):
    _, venv_bin = installed
    published = {}
    for name, bin_folder in (("wheel", venv_bin), ("checkout", CHECKOUT_BIN)):
        folder = tmp_path / name
        folder.mkdir()
        env = clean_environment(DAGSTER_HOME=folder / "dagster_home", **SMALL_DAY)
        backfill = subprocess.run(
            [str(bin_folder / "chargeback"), "backfill", DAY],
            cwd=folder, env=env, capture_output=True, text=True, timeout=600,
        )  # fmt: skip
        assert backfill.returncode == 0, backfill.stdout + backfill.stderr
        published[name] = published_files(folder / "data" / "reports")

    # The cost reports exist only with a pricing file: the default one was found inside the package.
    assert any("chargeback" in path for path in published["wheel"]), sorted(published["wheel"])
    assert published["wheel"] == published["checkout"]


def test_the_installed_code_location_validates_from_an_empty_folder(installed, tmp_path):
    _, venv_bin = installed
    (tmp_path / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    validated = subprocess.run(
        [str(venv_bin / "dagster"), "definitions", "validate", "-m", "chargeback_pipeline.definitions"],
        cwd=tmp_path, env=clean_environment(DAGSTER_HOME=tmp_path), capture_output=True, text=True, timeout=300,
    )  # fmt: skip

    assert validated.returncode == 0, validated.stdout + validated.stderr
    assert "All code locations passed validation" in validated.stdout + validated.stderr


def test_the_local_log_analytics_stand_in_says_it_needs_the_test_extra(installed, tmp_path):
    _, venv_bin = installed
    imported = subprocess.run(
        [str(venv_bin / "python"), "-c", "import chargeback_pipeline.standins.log_analytics"],
        cwd=tmp_path, env=clean_environment(), capture_output=True, text=True, timeout=120,
    )  # fmt: skip

    assert imported.returncode == 1
    assert "duckdb-kql, a test dependency: pip install 'chargeback_pipeline[test]'" in imported.stderr
