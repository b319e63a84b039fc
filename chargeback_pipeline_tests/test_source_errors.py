"""Source errors are classified: a refused query (400, 401, 403, 404) fails at once saying what to fix;
throttling, 5xx, timeouts and an unreachable service are retried within a time bound the log states as it
happens. Through the real `LogsQueryClient` and `MetricsClient`, against the local stand-ins; and the
settings refuse a Log Analytics source that could not reconcile, unless that is switched off on purpose."""

import logging
import os
import re
import time
import uuid
from datetime import UTC, date, datetime, timedelta

import dagster as dg
import pytest

from chargeback_pipeline.cli.backfill import BackfillFailed, backfill
from chargeback_pipeline.settings import SettingsError, load_settings
from chargeback_pipeline.sources.azure_metrics import MetricsQueryError, PermanentMetricsError
from chargeback_pipeline.sources.base import PermanentSourceError, TimeWindow, TransientSourceError
from chargeback_pipeline.sources.log_analytics import (
    LogAnalyticsSource,
    PermanentQueryError,
    TransientQueryError,
)
from chargeback_pipeline.sources.log_analytics.resource import LogAnalyticsSourceResource
from chargeback_pipeline.sources.simulated import PAYGO_BACKEND_ID, PTU_BACKEND_ID, SimulatedSource, SimulationProfile
from chargeback_pipeline.sources.simulated import account_resource_id as resource_id
from chargeback_pipeline.standins.log_analytics import LogAnalyticsStandIn
from chargeback_pipeline.standins.metrics import MetricsStandIn
from chargeback_pipeline_tests.conftest import ASSETS, local_resources, pipeline

GATEWAY = "ApiManagementGatewayLogs"
LLM = "ApiManagementGatewayLlmLog"
HOUR = TimeWindow(datetime(2026, 1, 1, 15, tzinfo=UTC), datetime(2026, 1, 1, 16, tzinfo=UTC))
LOADED = TimeWindow(HOUR.start - timedelta(hours=1), HOUR.end + timedelta(hours=1))
LOGGER_NAME = "chargeback_pipeline.sources.log_analytics"
WORKSPACE = "00000000-0000-0000-0000-00000000e440"
AT_ONCE_SECONDS = 2.0  # a refused query fails within this, though a retry would wait seconds
# Production-like retries: a retried refusal would take seconds (backoff 1, 2, 4, ... s).
PATIENT = {"retry_total": 6, "retry_backoff_factor": 1.0, "retry_backoff_max": 60.0, "query_timeout": 30}
QUICK = {"retry_total": 4, "retry_backoff_factor": 0.01, "retry_backoff_max": 0.05, "query_timeout": 30}
RESOURCE_IDS = [resource_id(PTU_BACKEND_ID), resource_id(PAYGO_BACKEND_ID)]


@pytest.fixture(scope="module")
def simulated() -> SimulatedSource:
    return SimulatedSource(SimulationProfile(requests_per_hour=600))


@pytest.fixture(scope="module")
def server(simulated):
    tables = {GATEWAY: simulated.gateway_logs(LOADED).rows, LLM: simulated.llm_logs(LOADED).rows}
    with LogAnalyticsStandIn(tables) as standin:
        yield standin


@pytest.fixture
def standin(server):
    server.heal()
    server.wait_until_idle()
    server.reset_counters()
    yield server
    server.heal()


@pytest.fixture(scope="module")
def metrics_server(simulated):
    with MetricsStandIn(simulated.deployment_metrics(LOADED).rows) as standin:
        yield standin


@pytest.fixture
def metrics_standin(metrics_server):
    metrics_server.heal()
    metrics_server.requests_received = 0
    yield metrics_server
    metrics_server.heal()


def make_source(endpoint: str, workspace: str | None = None, **settings) -> LogAnalyticsSource:
    workspace = workspace or f"ws-{uuid.uuid4().hex[:12]}"  # own concurrency slots per test
    return LogAnalyticsSource(workspace, logs_endpoint=endpoint, **settings)


def metrics_source(metrics: MetricsStandIn, **settings) -> LogAnalyticsSource:
    return LogAnalyticsSource(
        "ws-metrics", "http://127.0.0.1:9/v1", metrics.endpoint, resource_ids=RESOURCE_IDS, **(PATIENT | settings)
    )


def timed(call):
    started = time.monotonic()
    try:
        call()
    except Exception as error:
        return error, time.monotonic() - started
    pytest.fail("the call did not fail")


def warnings_of(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == LOGGER_NAME and r.levelno == logging.WARNING]


# --- refused queries fail at once, saying what to fix ----------------------------------------------------


@pytest.mark.parametrize(
    ("status", "fix"),
    [
        (400, "CHARGEBACK_GATEWAY_TABLE"),
        (401, "DefaultAzureCredential"),
        (403, "the identity lacks the role Log Analytics Reader on the Log Analytics workspace {workspace}"),
        (404, "CHARGEBACK_LOG_ANALYTICS_WORKSPACE_ID"),
    ],
    ids=["400", "401", "403", "404"],
)
def test_a_refused_log_analytics_query_fails_at_once_naming_the_fix(standin, status, fix):
    standin.fail_next(1, status=status)
    source = make_source(standin.endpoint, **PATIENT)

    error, seconds = timed(lambda: source.gateway_logs(HOUR))

    assert isinstance(error, PermanentQueryError) and isinstance(error, PermanentSourceError)
    assert not isinstance(error, TransientSourceError)
    assert seconds < AT_ONCE_SECONDS
    assert standin.queries_received == 1  # never retried
    message = str(error)
    assert f"HTTP {status}" in message and "Not retried" in message
    assert fix.format(workspace=source.workspace_id) in message
    assert f"workspace {source.workspace_id}, table {GATEWAY}, window {HOUR}" in message


def test_a_wrong_workspace_and_a_missing_table_are_refused_by_the_service_itself(simulated):
    tables = {GATEWAY: simulated.gateway_logs(LOADED).rows}
    with LogAnalyticsStandIn(tables, workspace_id=WORKSPACE) as standin:
        wrong, seconds = timed(lambda: make_source(standin.endpoint, "not-our-workspace", **PATIENT).gateway_logs(HOUR))
        missing, _ = timed(lambda: make_source(standin.endpoint, WORKSPACE, **PATIENT).llm_logs(HOUR))
        assert standin.queries_received == 2

    assert isinstance(wrong, PermanentQueryError) and seconds < AT_ONCE_SECONDS
    assert "HTTP 404 PathNotFoundError" in str(wrong) and "CHARGEBACK_LOG_ANALYTICS_WORKSPACE_ID" in str(wrong)
    assert isinstance(missing, PermanentQueryError)
    assert "HTTP 400 BadArgumentError" in str(missing) and "CHARGEBACK_LLM_TABLE" in str(missing)


@pytest.mark.parametrize(
    ("status", "fix"),
    [
        (400, "CHARGEBACK_OPENAI_RESOURCE_IDS"),
        (403, "the identity lacks the role Monitoring Reader on the Azure OpenAI resource(s) {ids}"),
        (404, "CHARGEBACK_METRICS_ENDPOINT"),
    ],
    ids=["400", "403", "404"],
)
def test_a_refused_metrics_query_fails_at_once_naming_the_fix(metrics_standin, status, fix):
    metrics_standin.fail_next(1, status=status)
    source = metrics_source(metrics_standin)

    error, seconds = timed(lambda: source.deployment_metrics(HOUR))

    assert isinstance(error, PermanentMetricsError) and not isinstance(error, TransientSourceError)
    assert seconds < AT_ONCE_SECONDS and metrics_standin.requests_received == 1
    ids = ", ".join(RESOURCE_IDS)  # one subscription: one batch, in the configured order
    assert f"HTTP {status}" in str(error) and fix.format(ids=ids) in str(error)


# --- transient errors are retried, in the open, within a bound -----------------------------------------


def test_throttled_then_answered_succeeds_and_each_retry_says_attempt_and_bound(standin, simulated, caplog):
    standin.fail_next(1, status=429)
    source = make_source(standin.endpoint, **QUICK, fetch_timeout=120)

    with caplog.at_level(logging.WARNING, logger=LOGGER_NAME):
        fetched = source.gateway_logs(HOUR)

    assert fetched.rows.num_rows == simulated.gateway_logs(HOUR).rows.num_rows
    [refused, retry] = warnings_of(caplog)
    assert "answered HTTP 429 (no Retry-After)" in refused
    assert retry.startswith(f"Retrying workspace {source.workspace_id}, table {GATEWAY}, window {HOUR}")
    assert "attempt 2 of at most 5" in retry
    assert re.search(r"this fetch gives up at \d\d:\d\d:\d\dZ, in 1[12]\d s \(time bound 120 s\)", retry)


def test_metrics_throttled_then_answered_succeed(metrics_standin, simulated, caplog):
    metrics_standin.fail_next(1, status=429, retry_after=0.05)
    source = metrics_source(metrics_standin, **QUICK)

    with caplog.at_level(logging.WARNING, logger=LOGGER_NAME):
        fetched = source.deployment_metrics(HOUR)

    assert fetched.rows.num_rows == simulated.deployment_metrics(HOUR).rows.num_rows > 0
    assert any(line.startswith("Retrying deployment metrics") and "attempt 2" in line for line in warnings_of(caplog))


def test_a_service_that_stays_unavailable_is_transient(standin):
    standin.fail_always(503)
    error, _ = timed(lambda: make_source(standin.endpoint, **(QUICK | {"retry_total": 2})).gateway_logs(HOUR))
    assert isinstance(error, TransientQueryError) and isinstance(error, TransientSourceError)
    assert "HTTP 503" in str(error) and standin.queries_received == 3


def test_a_standin_killed_mid_run_fails_within_the_stated_bound(simulated, caplog):
    bound = 2.0
    tables = {GATEWAY: simulated.gateway_logs(LOADED).rows, LLM: simulated.llm_logs(LOADED).rows}
    standin = LogAnalyticsStandIn(tables).start()
    # Retries alone would go on for over a minute: the fetch's time bound stops them.
    source = make_source(standin.endpoint, retry_total=20, retry_backoff_factor=0.2, retry_backoff_max=0.4,
                         fetch_timeout=bound)  # fmt: skip
    assert source.gateway_logs(HOUR).rows.num_rows > 0
    standin.kill()  # open connections dropped, new ones refused

    with caplog.at_level(logging.WARNING, logger=LOGGER_NAME):
        error, seconds = timed(lambda: source.llm_logs(HOUR))

    assert isinstance(error, TransientQueryError)
    assert "time bound is spent (2 s, CHARGEBACK_LOG_ANALYTICS_FETCH_TIMEOUT_SECONDS)" in str(error)
    assert f"table {LLM}" in str(error)
    assert seconds <= bound + 0.3
    retries = [line for line in warnings_of(caplog) if line.startswith("Retrying")]
    assert len(retries) >= 3
    assert all("of at most 21" in line and "(time bound 2 s)" in line for line in retries)


# --- through the pipeline: the step retries only what is transient, within a logged bound ---------------

DAY = date(2026, 11, 20)
CLOSED = "http://127.0.0.1:9"  # the discard port: nothing listens, every connection is refused


@pytest.fixture
def managed_instance():
    with dg.instance_for_test(overrides={"python_logs": {"managed_python_loggers": ["chargeback_pipeline"]}}) as i:
        yield i


def resource(logs_endpoint: str, metrics_endpoint: str, **settings) -> LogAnalyticsSourceResource:
    return LogAnalyticsSourceResource(
        log_analytics_workspace_id=WORKSPACE,
        log_analytics_endpoint=logs_endpoint,
        metrics_endpoint=metrics_endpoint,
        openai_resource_ids=RESOURCE_IDS,
        **settings,
    )


def test_a_refused_query_fails_the_step_at_once_without_step_retries(tmp_path, managed_instance):
    with LogAnalyticsStandIn() as logs, MetricsStandIn() as metrics:
        logs.fail_always(403)
        source = resource(logs.endpoint, metrics.endpoint, step_retries=3, step_retry_delay_seconds=30)
        started = time.monotonic()
        with pytest.raises(BackfillFailed) as failure:
            backfill(DAY, DAY, pipeline(local_resources(tmp_path, source)), managed_instance)
        seconds = time.monotonic() - started

    assert seconds < 30  # a step retry would have waited 30 s
    assert "Log Analytics Reader on the Log Analytics workspace" in str(failure.value)
    run_log = [record.user_message for record in managed_instance.all_logs(failure.value.result.run_id)]
    assert not [line for line in run_log if "Retrying the step" in line]


def test_an_unreachable_source_fails_the_step_within_the_bound_its_log_stated(tmp_path, managed_instance):
    source = resource(
        f"{CLOSED}/v1", CLOSED,
        log_analytics_retry_total=20, log_analytics_retry_backoff_factor=0.25, log_analytics_retry_backoff_max=0.25,
        log_analytics_fetch_timeout_seconds=3.0, step_retries=1, step_retry_delay_seconds=0.1,
    )  # fmt: skip
    assert source.step_time_bound_seconds() == pytest.approx(2 * 3.0 + 0.1)

    # One source step alone, so nothing else runs between its attempts.
    result = dg.materialize(
        ASSETS,
        selection=["raw_gateway_logs"],
        partition_key="2026-11-20-00:00",
        resources=local_resources(tmp_path, source),
        instance=managed_instance,
        raise_on_error=False,
    )

    assert not result.success
    records = managed_instance.all_logs(result.run_id)
    [failed_at] = [r.timestamp for r in records if r.dagster_event and r.dagster_event.is_step_failure]
    [stated] = [r for r in records if "Retrying the step" in r.user_message]
    assert "step attempt 1 of 2" in stated.user_message
    assert "each fetch giving up within 3 s; the step's whole bound is 2 x 3 s + 0.1 s of waits = 6.1 s" in (
        stated.user_message
    )
    at_most = float(re.search(r"at most ([\d.]+) s from now", stated.user_message).group(1))
    assert at_most == pytest.approx(0.1 + 3.0)
    assert failed_at - stated.timestamp <= at_most + 1.5  # the bound, and the executor's restart of the step
    [failure] = [r for r in records if r.dagster_event and r.dagster_event.is_step_failure]
    assert "gave up: the fetch's time bound is spent (3 s, CHARGEBACK_LOG_ANALYTICS_FETCH_TIMEOUT_SECONDS)" in (
        str(failure.dagster_event.step_failure_data.error.cause)
    )


# --- settings: reconciliation needs the resources, unless switched off on purpose ----------------------


@pytest.fixture
def log_analytics_environment(monkeypatch):
    for name in list(os.environ):
        if name.startswith("CHARGEBACK_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("CHARGEBACK_SOURCE", "log_analytics")
    monkeypatch.setenv("CHARGEBACK_LOG_ANALYTICS_WORKSPACE_ID", WORKSPACE)
    return monkeypatch


def test_log_analytics_without_resource_ids_refuses_to_load(log_analytics_environment):
    with pytest.raises(SettingsError) as refused:
        load_settings()

    message = str(refused.value)
    assert "CHARGEBACK_SOURCE=log_analytics" in message
    assert "CHARGEBACK_OPENAI_RESOURCE_IDS is not set" in message
    assert "CHARGEBACK_RECONCILE_WITH_AZURE_MONITOR=false" in message


def test_reconciliation_switched_off_on_purpose_loads_and_declares_the_metrics_empty(log_analytics_environment):
    log_analytics_environment.setenv("CHARGEBACK_RECONCILE_WITH_AZURE_MONITOR", "false")

    source = load_settings().source_resource

    assert source.reconcile_with_azure_monitor is False
    fetched = source.build_source().deployment_metrics(HOUR)
    assert fetched.rows.num_rows == 0
    assert "reconciliation with Azure Monitor is switched off" in fetched.declared_empty


@pytest.mark.parametrize(
    ("variables", "problem"),
    [
        (
            {"CHARGEBACK_RECONCILE_WITH_AZURE_MONITOR": "false", "CHARGEBACK_OPENAI_RESOURCE_IDS": resource_id("a")},
            "CHARGEBACK_RECONCILE_WITH_AZURE_MONITOR=false contradicts CHARGEBACK_OPENAI_RESOURCE_IDS",
        ),
        (
            {
                "CHARGEBACK_OPENAI_RESOURCE_IDS": "/subscriptions/1/rg",
                "CHARGEBACK_METRICS_ENDPOINT": "x",
            },
            "CHARGEBACK_OPENAI_RESOURCE_IDS: not the ARM id of an Azure OpenAI resource: /subscriptions/1/rg",
        ),
        ({"CHARGEBACK_OPENAI_RESOURCE_IDS": resource_id("a")}, "CHARGEBACK_METRICS_ENDPOINT is not set"),
        ({"CHARGEBACK_LOG_ANALYTICS_FETCH_TIMEOUT_SECONDS": "0"}, "CHARGEBACK_LOG_ANALYTICS_FETCH_TIMEOUT_SECONDS"),
    ],
    ids=["contradiction", "malformed-id", "no-metrics-endpoint", "no-time-bound"],
)
def test_an_inconsistent_reconciliation_setting_refuses_to_load(log_analytics_environment, variables, problem):
    for name, value in variables.items():
        log_analytics_environment.setenv(name, value)

    with pytest.raises(SettingsError, match=re.escape(problem)):
        load_settings()


def test_a_complete_log_analytics_configuration_loads(log_analytics_environment):
    log_analytics_environment.setenv("CHARGEBACK_OPENAI_RESOURCE_IDS", ",".join(RESOURCE_IDS))
    log_analytics_environment.setenv("CHARGEBACK_METRICS_ENDPOINT", "https://eastus.metrics.monitor.azure.com")

    source = load_settings().source_resource

    assert source.openai_resource_ids == RESOURCE_IDS and source.reconcile_with_azure_monitor
    assert source.fetch_time_bound_seconds() == 600 and source.step_time_bound_seconds() == 2610


def test_errors_that_are_not_retried_are_not_transient():
    assert not issubclass(PermanentQueryError, TransientSourceError)
    assert not issubclass(PermanentMetricsError, TransientSourceError)
    assert issubclass(PermanentMetricsError, MetricsQueryError) and issubclass(
        TransientQueryError, TransientSourceError
    )
