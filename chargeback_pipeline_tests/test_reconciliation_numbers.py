"""The reconciliation's numbers as the UI shows them: each percentage recomputed from the file's own
columns, every deducted quantity shown beside it, and the asset and its check agreeing on each name.

One simulated day whose 15:00 gateway rows are lost: that hour's LLM records on the deployment names two
resources serve have no known backend (`unplaced`), so the two percentages differ."""

from datetime import UTC, date, datetime

import dagster as dg
import pyarrow.parquet as pq
import pytest

from chargeback_pipeline.cli.backfill import backfill
from chargeback_pipeline.defs.partitions import hour_partition_key
from chargeback_pipeline.sources.simulated.resource import SimulatedSourceResource
from chargeback_pipeline.storage import keys
from chargeback_pipeline_tests.conftest import local_resources, pipeline

DAY = date(2026, 11, 20)
LOST_HOUR = datetime(2026, 11, 20, 15, tzinfo=UTC)


@pytest.fixture(scope="module")
def reconciled(tmp_path_factory):
    folder = tmp_path_factory.mktemp("reconciliation")
    source = SimulatedSourceResource(
        simulated_requests_per_hour=300, simulated_missing_gateway_hours=[LOST_HOUR.isoformat()]
    )
    with dg.instance_for_test() as instance:
        [chunk] = backfill(DAY, DAY, pipeline(local_resources(folder, source)), instance, log_level="ERROR")
        yield folder, chunk, instance


def latest_metadata(instance, asset: str, partition: str) -> dict:
    [record] = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey(asset), asset_partitions=[partition]), limit=1
    ).records
    return {name: entry.value for name, entry in record.asset_materialization.metadata.items()}


def markdown_cells(text: str) -> list[dict]:
    header, _, *rows = [line for line in text.splitlines() if line.startswith("|")]
    names = [cell.strip() for cell in header.strip("|").split("|")]
    return [dict(zip(names, (c.strip() for c in row.strip("|").split("|")), strict=True)) for row in rows]


def test_unattributed_percent_is_the_whole_gap_over_the_metric_and_the_deduction_is_shown(reconciled):
    folder, _, instance = reconciled
    rows = pq.read_table(folder / "lake" / keys.day_key(keys.DAILY_RECONCILIATION, DAY)).to_pylist()
    shown = {(r["backend_id"], r["deployment_name"]): r for r in markdown_cells(
        latest_metadata(instance, "daily_reconciliation", str(DAY))["per_deployment"])}  # fmt: skip

    deducted = 0
    for row in rows:
        if not row["has_metrics"]:
            continue
        metric = row["metric_prompt_tokens"] + row["metric_completion_tokens"]
        gap = metric - row["logged_prompt_tokens"] - row["logged_completion_tokens"]
        if metric == 0:  # metered nothing (a pay-as-you-go twin no request spilled to): no percentage
            assert row["unattributed_percent"] is None and row["unexplained_percent"] is None, row
            continue
        assert row["unattributed_percent"] == round(100 * gap / metric, 3)
        assert row["unexplained_percent"] == round(100 * (gap - row["unplaced_tokens"]) / metric, 3)
        cells = shown[(row["backend_id"], row["deployment_name"])]
        assert cells["metric_tokens"] == f"{metric:,}" and cells["unattributed_tokens"] == f"{gap:,}"
        assert cells["unplaced_tokens"] == f"{row['unplaced_tokens']:,}"
        assert float(cells["unattributed_percent"]) == row["unattributed_percent"]
        assert float(cells["unexplained_percent"]) == row["unexplained_percent"]
        deducted += row["unplaced_tokens"] > 0 and row["unattributed_percent"] != row["unexplained_percent"]
    assert deducted >= 1  # the lost hour's records: the two percentages differ, and both are shown


def test_the_hour_and_its_check_show_the_same_token_totals_recomputed_from_its_file(reconciled):
    folder, chunk, instance = reconciled
    partition = hour_partition_key(LOST_HOUR)
    hour = pq.read_table(folder / "lake" / keys.hour_key(keys.HOURLY_RECONCILIATION, LOST_HOUR)).to_pylist()
    placed = [r for r in hour if r["backend_id"] != "unknown"]
    metric = sum(r["metric_prompt_tokens"] + r["metric_completion_tokens"] for r in placed)
    logged = sum(r["logged_prompt_tokens"] + r["logged_completion_tokens"] for r in placed)
    unknown = sum(
        r["logged_prompt_tokens"] + r["logged_completion_tokens"] for r in hour if r["backend_id"] == "unknown"
    )
    expected = {"metric_tokens": metric, "logged_tokens": logged, "unattributed_tokens": metric - logged,
                "logged_tokens_without_known_backend": unknown}  # fmt: skip

    asset = latest_metadata(instance, "deployment_reconciliation", partition)
    [check] = [
        e
        for e in chunk.hourly.get_asset_check_evaluations()
        if e.partition == partition and e.asset_key == dg.AssetKey("deployment_reconciliation")
    ]
    assert unknown > 0
    assert {name: asset[name] for name in expected} == expected
    assert {name: check.metadata[name].value for name in expected} == expected
