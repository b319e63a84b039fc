"""LogAnalyticsSource.deployment_metrics against the local metrics stand-in, through the real MetricsClient."""

import logging
from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from chargeback_pipeline.sources.azure_metrics import MetricsQueryError
from chargeback_pipeline.sources.base import TimeWindow
from chargeback_pipeline.sources.log_analytics import LogAnalyticsSource, metrics_audience
from chargeback_pipeline.sources.simulated import SimulatedSource, SimulationProfile
from chargeback_pipeline.standins.metrics import MetricsStandIn
from chargeback_pipeline.storage.schemas import DEPLOYMENT_METRICS_SCHEMA

HOUR = TimeWindow(datetime(2026, 1, 1, 15, tzinfo=UTC), datetime(2026, 1, 1, 16, tzinfo=UTC))
THREE_HOURS = TimeWindow(HOUR.start - timedelta(hours=1), HOUR.end + timedelta(hours=1))
NO_LOGS_HERE = "http://127.0.0.1:9/v1"  # the logs client is never called in these tests


def resource(subscription: str, account: str) -> str:
    return (
        f"/subscriptions/{subscription}/resourceGroups/rg-ai/providers/Microsoft.CognitiveServices/accounts/{account}"
    )


def metric_rows(rows: list[tuple[datetime, str, str, str, int]]) -> pa.Table:
    names = DEPLOYMENT_METRICS_SCHEMA.names
    return pa.Table.from_pylist([dict(zip(names, row, strict=True)) for row in rows], schema=DEPLOYMENT_METRICS_SCHEMA)


def sorted_rows(table: pa.Table) -> pa.Table:
    return table.sort_by([(name, "ascending") for name in table.column_names])


def metrics_source(standin: MetricsStandIn, resource_ids: list[str], **overrides) -> LogAnalyticsSource:
    settings = {"retry_total": 2, "retry_backoff_factor": 0.01}
    return LogAnalyticsSource(
        "ws-metrics", NO_LOGS_HERE, standin.endpoint, resource_ids=resource_ids, **(settings | overrides)
    )


@pytest.fixture(scope="module")
def simulated_metrics() -> pa.Table:
    return SimulatedSource(SimulationProfile(requests_per_hour=2000)).deployment_metrics(THREE_HOURS).rows


@pytest.mark.parametrize("order", [1, -1], ids=["as-listed", "reversed"])
@pytest.mark.parametrize("window", [HOUR, THREE_HOURS], ids=["hour", "three-hours"])
def test_two_resources_get_exactly_the_numbers_of_the_service(simulated_metrics, order, window):
    resource_ids = sorted(set(simulated_metrics["ResourceId"].to_pylist()))[::order]
    assert len(resource_ids) == 2
    with MetricsStandIn(simulated_metrics) as standin:
        fetched = metrics_source(standin, resource_ids).deployment_metrics(window)

    expected = simulated_metrics.filter((pc.field("TimeStamp") >= window.start) & (pc.field("TimeStamp") < window.end))
    assert fetched.rows.schema == DEPLOYMENT_METRICS_SCHEMA
    assert expected.num_rows > 0 and fetched.rejected.num_rows == 0
    assert sorted_rows(fetched.rows).equals(sorted_rows(expected))


def test_an_hour_without_a_data_point_yields_no_row():
    account = resource("11111111-1111-1111-1111-111111111111", "aoai-a")
    standin_rows = metric_rows(
        [
            (HOUR.start, account, "gpt-4o", "ProcessedPromptTokens", 1200),
            (HOUR.start, account, "gpt-4o", "GeneratedTokens", 300),
            (HOUR.end, account, "gpt-4o", "GeneratedTokens", 7),  # next hour: only completions
        ]
    )
    with MetricsStandIn(standin_rows) as standin:
        fetched = metrics_source(standin, [account]).deployment_metrics(
            TimeWindow(HOUR.start, HOUR.end + timedelta(hours=1))
        )

    assert sorted_rows(fetched.rows).equals(sorted_rows(standin_rows))


def test_more_than_ten_deployments_all_arrive_and_a_possibly_cut_answer_raises():
    account = resource("11111111-1111-1111-1111-111111111111", "aoai-a")
    standin_rows = metric_rows(
        [(HOUR.start, account, f"deployment-{i:02}", metric, 100 + i) for i in range(12)
         for metric in ("ProcessedPromptTokens", "GeneratedTokens")]
    )  # fmt: skip
    with MetricsStandIn(standin_rows) as standin:
        fetched = metrics_source(standin, [account]).deployment_metrics(HOUR)
        with pytest.raises(MetricsQueryError, match="max_series"):
            metrics_source(standin, [account], max_metric_series=12).deployment_metrics(HOUR)

    assert sorted_rows(fetched.rows).equals(sorted_rows(standin_rows))


def test_resources_of_two_subscriptions_are_asked_per_subscription():
    first = resource("11111111-1111-1111-1111-111111111111", "aoai-a")
    second = resource("22222222-2222-2222-2222-222222222222", "aoai-b")
    standin_rows = metric_rows(
        [(HOUR.start, first, "gpt-4o", "GeneratedTokens", 5), (HOUR.start, second, "gpt-4o", "GeneratedTokens", 9)]
    )
    with MetricsStandIn(standin_rows) as standin:
        fetched = metrics_source(standin, [second, first]).deployment_metrics(HOUR)
        # per subscription: the token totals, then the PTU utilisation (another aggregation)
        assert standin.requests_received == 4

    assert sorted_rows(fetched.rows).equals(sorted_rows(standin_rows))


def test_the_ptu_utilization_is_read_per_minute_beside_the_hourly_token_totals():
    ptu = resource("11111111-1111-1111-1111-111111111111", "aoai-ptu")
    utilization = "AzureOpenAIProvisionedManagedUtilizationV2"
    # two samples inside minute :20 (the service's own grain is finer than PT1M: the minute is their maximum)
    samples = [(0, 0, 35), (20, 0, 60), (20, 30, 100), (40, 0, 80)]
    standin_rows = metric_rows(
        [
            (HOUR.start + timedelta(minutes=m, seconds=sec), ptu, "gpt-4.1", utilization, percent)
            for m, sec, percent in samples
        ]
        + [(HOUR.start + timedelta(minutes=m), ptu, "gpt-4.1", "ProcessedPromptTokens", 1000) for m in (0, 20, 40)]
    )
    with MetricsStandIn(standin_rows) as standin:
        fetched = metrics_source(standin, [ptu]).deployment_metrics(HOUR)
    rows = [(row["MetricName"], row["TimeStamp"], row["Total"]) for row in fetched.rows.to_pylist()]
    # Maximum per minute (PT1M) for the percentage, one row per minute with data; Total per hour for tokens
    assert sorted(rows) == [
        ("AzureOpenAIProvisionedManagedUtilizationV2", HOUR.start, 35),
        ("AzureOpenAIProvisionedManagedUtilizationV2", HOUR.start + timedelta(minutes=20), 100),
        ("AzureOpenAIProvisionedManagedUtilizationV2", HOUR.start + timedelta(minutes=40), 80),
        ("ProcessedPromptTokens", HOUR.start, 3000),
    ]
    assert fetched.rejected.num_rows == 0


def test_without_resource_ids_there_are_no_metrics_and_a_warning(caplog):
    source = LogAnalyticsSource("ws-metrics", NO_LOGS_HERE)
    with caplog.at_level(logging.WARNING):
        fetched = source.deployment_metrics(HOUR)
    assert fetched.rows.num_rows == 0 and "No Azure OpenAI resource ids" in caplog.text


def test_metrics_token_audience_follows_the_cloud_of_the_endpoint():
    assert metrics_audience("https://eastus.metrics.monitor.azure.com") == "https://metrics.monitor.azure.com"
    assert metrics_audience("https://usgovvirginia.metrics.monitor.azure.us") == "https://metrics.monitor.azure.us"
