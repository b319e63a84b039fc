"""A real tenant's topology: the same deployment names on a PTU resource and the pay-as-you-go resource it
spills over to. Usage needs no pricing; a folder export of the day prices exactly like the simulator; and
onboarding (`chargeback discover --write`, fill in, `chargeback check-pricing`) yields a pricing file a
backfill runs with."""

import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from click.testing import CliRunner

from chargeback_pipeline.cli.backfill import BackfillFailed, backfill
from chargeback_pipeline.cli.commands import main
from chargeback_pipeline.core.reports import split_report
from chargeback_pipeline.defs.resources import PricingResource
from chargeback_pipeline.sources.base import TimeWindow
from chargeback_pipeline.sources.folder.resource import FolderSourceResource
from chargeback_pipeline.sources.simulated import SimulatedSource, SimulationProfile
from chargeback_pipeline.sources.simulated.resource import SimulatedSourceResource
from chargeback_pipeline_tests.conftest import local_resources, pipeline

DAY = date(2026, 11, 20)
RATE = 150
# Small PTU deployments for the small volume: their busy minutes saturate, so some requests spill.
PTU_COUNTS = (("gpt-4.1", 2), ("gpt-4o", 2))
SMALL_PTU = [f"{name}={count}" for name, count in PTU_COUNTS]
GATEWAY_TABLE, LLM_TABLE = "ApiManagementGatewayLogs", "ApiManagementGatewayLlmLog"


def day_window(day: date, margin: timedelta = timedelta(0)) -> TimeWindow:
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    return TimeWindow(start - margin, start + timedelta(days=1) + margin)


def json_lines(table: pa.Table) -> str:
    """Rows the way a Log Analytics export writes them: one JSON object a line, ISO 8601 UTC times."""

    def value(v):
        return v.strftime("%Y-%m-%dT%H:%M:%S.%fZ") if isinstance(v, datetime) else v

    return "".join(json.dumps({k: value(v) for k, v in row.items()}) + "\n" for row in table.to_pylist())


def export_simulated_days(root: Path, source: SimulatedSource, first: date, last: date) -> Path:
    """The simulator's rows of first..last (and an hour around, as a continuous export has) as a folder
    export, metrics with their ResourceId as the AzureMetrics table has it."""
    window = TimeWindow(day_window(first).start - timedelta(hours=1), day_window(last).end + timedelta(hours=1))
    for table, fetch in ((GATEWAY_TABLE, source.gateway_logs), (LLM_TABLE, source.llm_logs)):
        (root / table).mkdir(parents=True)
        (root / table / "export.jsonl").write_text(json_lines(fetch(window).rows))
    (root / "metrics").mkdir()
    (root / "metrics" / "export.jsonl").write_text(json_lines(source.deployment_metrics(window).rows))
    return root


def test_the_usage_report_needs_no_pricing_file(tmp_path, instance):
    resources = local_resources(tmp_path, SimulatedSourceResource(simulated_requests_per_hour=RATE))
    resources["pricing"] = PricingResource(path="")

    with pytest.raises(BackfillFailed, match="no pricing file is configured"):
        backfill(DAY, DAY, pipeline(resources), instance)

    report = pq.read_table(tmp_path / "reports" / f"daily/usage_date={DAY}/product_usage.parquet")
    products, unattributed = split_report(report)
    simulator = SimulatedSource(SimulationProfile(requests_per_hour=RATE))
    assert products.to_pylist() == simulator.expected_daily_usage(DAY).to_pylist()
    expected = simulator.expected_unattributed_tokens(day_window(DAY))
    assert unattributed == {
        (r["backend_id"], r["deployment_name"]): (r["prompt_tokens"], r["completion_tokens"])
        for r in expected.to_pylist()
        if r["prompt_tokens"] or r["completion_tokens"]
    }
    assert not (tmp_path / "reports" / f"daily/usage_date={DAY}/chargeback.csv").exists()


def test_a_folder_export_of_a_spillover_day_publishes_what_the_simulator_source_does(tmp_path, instance):
    simulator = SimulatedSource(SimulationProfile(requests_per_hour=RATE, ptu_counts=PTU_COUNTS))
    export = export_simulated_days(tmp_path / "export", simulator, DAY, DAY)
    from_folder = local_resources(tmp_path / "folder", FolderSourceResource(source_folder=str(export)))
    simulated = SimulatedSourceResource(simulated_requests_per_hour=RATE, simulated_ptu_counts=SMALL_PTU)
    from_simulator = local_resources(tmp_path / "simulated", simulated)

    backfill(DAY, DAY, pipeline(from_folder), instance)
    backfill(DAY, DAY, pipeline(from_simulator), instance)

    for name in ("product_usage", "chargeback", "focus"):
        folder_bytes = (tmp_path / "folder" / "reports" / f"daily/usage_date={DAY}/{name}.parquet").read_bytes()
        simulated_bytes = (tmp_path / "simulated" / "reports" / f"daily/usage_date={DAY}/{name}.parquet").read_bytes()
        assert folder_bytes == simulated_bytes, name
    lines = pq.read_table(tmp_path / "folder" / "reports" / f"daily/usage_date={DAY}/chargeback.parquet")
    assert {("aoai-ptu-eastus", "gpt-4.1"), ("aoai-paygo-eastus", "gpt-4.1")} <= {
        (r["backend_id"], r["deployment_name"]) for r in lines.to_pylist()
    }


def fill_in(skeleton: str) -> str:
    """What a FinOps engineer types into the skeleton: the kinds, PTU rates and token prices."""
    document = yaml.safe_load(skeleton)
    for backend_id, backend in document["backends"].items():
        backend["kind"] = "ptu" if "ptu" in backend_id else "paygo"
        if backend["kind"] == "ptu":
            for deployment in backend["deployments"].values():
                deployment["rates"] = [{"effective_from": "2025-01-01", "ptu_count": 50, "hourly_rate_per_ptu": "2.00"}]
    for model in document["models"].values():
        model["rates"] = [{"effective_from": "2025-01-01", "input_per_1k": "0.002", "output_per_1k": "0.008"}]
    return yaml.safe_dump(document)


@pytest.mark.parametrize("source", ["simulated", "folder"])
def test_discover_writes_a_pricing_file_that_validates_once_filled_and_prices_a_backfill(source, tmp_path, monkeypatch):
    yesterday = datetime.now(UTC).date() - timedelta(days=1)
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("CHARGEBACK_LAKE_DIR", str(tmp_path / "lake"))
    monkeypatch.setenv("CHARGEBACK_OUTPUT_DIR", str(tmp_path / "reports"))
    monkeypatch.setenv("CHARGEBACK_PARTITIONS_START", str(yesterday - timedelta(days=3)))
    monkeypatch.setenv("CHARGEBACK_SIMULATED_REQUESTS_PER_HOUR", str(RATE))
    monkeypatch.setenv("CHARGEBACK_SIMULATED_PTU_COUNTS", ",".join(SMALL_PTU))  # so that spill shows the twins
    # A low-volume day judges small numbers by chance: this test is about onboarding, not the checks.
    monkeypatch.setenv("CHARGEBACK_GATEWAY_COMPLETENESS_MIN_REQUESTS", "1000")
    monkeypatch.setenv("CHARGEBACK_RECONCILIATION_MIN_TOKENS", "1000000000")
    if source == "folder":
        simulator = SimulatedSource(SimulationProfile(requests_per_hour=RATE, ptu_counts=PTU_COUNTS))
        export = export_simulated_days(tmp_path / "export", simulator, yesterday, yesterday)
        monkeypatch.setenv("CHARGEBACK_SOURCE", "folder")
        monkeypatch.setenv("CHARGEBACK_SOURCE_FOLDER", str(export))
    from chargeback_pipeline import settings

    settings.current_settings.cache_clear()
    skeleton = tmp_path / "prices.yaml"
    try:
        discovered = CliRunner().invoke(main, ["discover", "--days", "1", "--write", str(skeleton)])
        assert discovered.exit_code == 0, discovered.output
        assert "aoai-paygo-eastus" in discovered.output and "never reached the LLM log" in discovered.output

        unfilled = CliRunner().invoke(main, ["check-pricing", str(skeleton)])
        assert unfilled.exit_code == 1
        assert "pricing.backends.aoai-ptu-eastus.kind" in unfilled.output  # each FILL_IN is named by its path

        skeleton.write_text(fill_in(skeleton.read_text()))
        checked = CliRunner().invoke(main, ["check-pricing", str(skeleton)])
        assert checked.exit_code == 0 and "valid (2 backends, 5 deployments, USD)" in checked.output

        monkeypatch.setenv("CHARGEBACK_PRICING_FILE", str(skeleton))
        settings.current_settings.cache_clear()
        backfilled = CliRunner().invoke(main, ["backfill", str(yesterday)])
        assert backfilled.exit_code == 0, backfilled.output
        assert (tmp_path / "reports" / f"daily/usage_date={yesterday}/chargeback.csv").exists()
    finally:
        settings.current_settings.cache_clear()
