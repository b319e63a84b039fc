"""The production path end to end: the asset graph reads Log Analytics and Azure Monitor through the real
`LogsQueryClient` and `MetricsClient`, over HTTP, from local stand-ins that speak their protocols."""

import json
import logging
from datetime import UTC, date, datetime, timedelta

import dagster as dg
import pyarrow as pa
import pyarrow.parquet
import pyarrow.parquet as pq
import pytest

from chargeback_pipeline.cli.backfill import BackfillFailed, backfill
from chargeback_pipeline.sources.base import TimeWindow
from chargeback_pipeline.sources.log_analytics.resource import LogAnalyticsSourceResource
from chargeback_pipeline.sources.simulated import PAYGO_BACKEND_ID, PTU_BACKEND_ID, SimulatedSource, SimulationProfile
from chargeback_pipeline.sources.simulated import account_resource_id as resource_id
from chargeback_pipeline.sources.simulated.resource import SimulatedSourceResource
from chargeback_pipeline.standins.log_analytics import LogAnalyticsStandIn
from chargeback_pipeline.standins.metrics import MetricsStandIn
from chargeback_pipeline_tests.conftest import local_resources, pipeline

DAY = date(2026, 11, 20)
RATE = 400
START = datetime(DAY.year, DAY.month, DAY.day, tzinfo=UTC)
REPORT = f"daily/usage_date={DAY}/product_usage"


@pytest.fixture(scope="module")
def standins():
    simulator = SimulatedSource(SimulationProfile(requests_per_hour=RATE))
    loaded = TimeWindow(START - timedelta(hours=1), START + timedelta(days=1, hours=1))
    tables = {
        "ApiManagementGatewayLogs": simulator.gateway_logs(loaded).rows,
        "ApiManagementGatewayLlmLog": simulator.llm_logs(loaded).rows,
    }
    # The service holds payloads too; the pipeline's KQL must never pull them.
    tables = {n: t.append_column("RequestBody", pa.array(["secret"] * t.num_rows)) for n, t in tables.items()}
    with LogAnalyticsStandIn(tables) as logs, MetricsStandIn(simulator.deployment_metrics(loaded).rows) as metrics:
        yield logs, metrics


def log_analytics_source(logs, metrics) -> LogAnalyticsSourceResource:
    return LogAnalyticsSourceResource(
        log_analytics_workspace_id="00000000-0000-0000-0000-00000000a11a",
        log_analytics_endpoint=logs.endpoint,
        metrics_endpoint=metrics.endpoint,
        openai_resource_ids=[resource_id(PTU_BACKEND_ID), resource_id(PAYGO_BACKEND_ID)],
        log_analytics_retry_total=3,
        log_analytics_retry_backoff_factor=0.01,
        log_analytics_retry_backoff_max=0.05,
        step_retries=1,
        step_retry_delay_seconds=0.05,
    )


@pytest.fixture
def managed_instance():
    # Our loggers reach the run's event log (and so the UI), as in the shipped dagster.yaml.
    with dg.instance_for_test(overrides={"python_logs": {"managed_python_loggers": ["chargeback_pipeline"]}}) as i:
        yield i


def test_a_day_through_the_real_sdks_equals_the_embedded_default(tmp_path, standins, managed_instance):
    logs, metrics = standins
    logs.heal()
    logs.truncate_at = 1_000  # every hour (~400-700 requests, more LLM rows) is split until complete

    backfill(
        DAY, DAY, pipeline(local_resources(tmp_path / "la", log_analytics_source(logs, metrics))), managed_instance
    )
    backfill(
        DAY,
        DAY,
        pipeline(local_resources(tmp_path / "sim", SimulatedSourceResource(simulated_requests_per_hour=RATE))),
        managed_instance,
    )

    for extension in ("csv", "parquet"):
        pulled = (tmp_path / "la" / "reports" / f"{REPORT}.{extension}").read_bytes()
        assert pulled == (tmp_path / "sim" / "reports" / f"{REPORT}.{extension}").read_bytes()
    assert all("RequestBody" not in query.query for query in logs.received)
    assert metrics.requests_received > 0


def test_throttling_is_retried_and_shows_in_the_run_log(tmp_path, standins, managed_instance):
    logs, metrics = standins
    logs.heal()
    logs.fail_next(1, status=429, retry_after=0.01)
    logs.fail_next(1, status=429)
    logs.fail_next(1, status=503)

    [chunk] = backfill(
        DAY, DAY, pipeline(local_resources(tmp_path, log_analytics_source(logs, metrics))), managed_instance
    )

    run_log = [
        record.user_message
        for record in managed_instance.all_logs(chunk.hourly.run_id)
        if record.level >= logging.WARNING
    ]
    assert sum("Retrying workspace 00000000-0000-0000-0000-00000000a11a" in line for line in run_log) == 3
    assert sum("answered HTTP 429 (Retry-After: 0.01s)" in line for line in run_log) == 1
    assert sum("answered HTTP 429 (no Retry-After)" in line for line in run_log) == 1
    assert sum("answered HTTP 503" in line for line in run_log) == 1
    assert (tmp_path / "reports" / f"{REPORT}.csv").exists()


def test_endless_outage_fails_the_partition_clearly_and_a_later_run_succeeds(tmp_path, standins, managed_instance):
    logs, metrics = standins
    logs.heal()
    logs.fail_always(503)
    resources = local_resources(tmp_path, log_analytics_source(logs, metrics))

    with pytest.raises(BackfillFailed) as failure:
        backfill(DAY, DAY, pipeline(resources), managed_instance)

    message = str(failure.value)
    assert "Log Analytics query failed for workspace 00000000-0000-0000-0000-00000000a11a" in message
    assert "window 2026-11-19T23:50:00+00:00" in message  # the first hour, with its join margin
    assert "ApiManagementGatewayLogs" in message or "ApiManagementGatewayLlmLog" in message
    assert not (tmp_path / "reports" / f"{REPORT}.csv").exists()

    logs.heal()
    backfill(DAY, DAY, pipeline(resources), managed_instance)
    assert (tmp_path / "reports" / f"{REPORT}.csv").exists()


def test_reconciliation_switched_off_on_purpose_is_said_by_the_checks_and_beside_the_report(
    tmp_path, standins, managed_instance
):
    """CHARGEBACK_RECONCILE_WITH_AZURE_MONITOR=false: no metrics are read, the reconciliation checks warn
    "not reconciled" (never pass), and each published day carries a record of why."""
    logs, _ = standins
    logs.heal()
    source = LogAnalyticsSourceResource(
        log_analytics_workspace_id="00000000-0000-0000-0000-00000000a11a",
        log_analytics_endpoint=logs.endpoint,
        reconcile_with_azure_monitor=False,
        log_analytics_retry_total=1,
        step_retries=0,
    )

    [chunk] = backfill(DAY, DAY, pipeline(local_resources(tmp_path, source)), managed_instance)

    evaluation = chunk.check_evaluations()["daily_reconciliation:tokens_reconcile_with_azure_monitor"]
    assert not evaluation.passed and evaluation.severity == dg.AssetCheckSeverity.WARN
    assert evaluation.description.startswith("not reconciled: switched off by configuration")
    record = json.loads((tmp_path / "reports" / f"daily/usage_date={DAY}/reconciliation_off.json").read_text())
    assert record["reconciled"] is False and "CHARGEBACK_RECONCILE_WITH_AZURE_MONITOR=false" in record["reason"]
    report = pq.read_table(tmp_path / "reports" / f"{REPORT}.parquet")
    assert "unattributed" not in report["product_id"].to_pylist()  # nothing was compared, so no gap is claimed
