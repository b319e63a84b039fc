"""The Log Analytics source as a Dagster resource: the APIM tables of a workspace through the real
`LogsQueryClient`, and the deployments' token metrics through Azure Monitor's `MetricsClient`."""

from pydantic import Field

from chargeback_pipeline.sources.base import LogSource
from chargeback_pipeline.sources.resource import LogTablesResource


class LogAnalyticsSourceResource(LogTablesResource):
    """Auth: DefaultAzureCredential (managed identity, workload identity or az login); no secret here."""

    log_analytics_workspace_id: str
    log_analytics_endpoint: str = "https://api.loganalytics.io/v1"
    metrics_endpoint: str | None = None
    # ARM ids of the Azure OpenAI resources whose token metrics the reconciliation reads.
    openai_resource_ids: list[str] = []
    # Query tuning (defaults suit production; tests shorten the backoff).
    log_analytics_max_concurrency: int = Field(default=5, ge=1, le=5)
    log_analytics_retry_total: int = Field(default=6, ge=0, le=20)
    log_analytics_retry_backoff_factor: float = Field(default=1.0, ge=0)
    log_analytics_retry_backoff_max: float = Field(default=60.0, ge=0)
    log_analytics_query_timeout: int = Field(default=300, ge=1, le=600)
    log_analytics_rows_per_query: int = Field(default=100_000, ge=1, le=500_000)

    def build_source(self) -> LogSource:
        from chargeback_pipeline.sources.log_analytics.source import LogAnalyticsSource

        return LogAnalyticsSource(
            workspace_id=self.log_analytics_workspace_id,
            logs_endpoint=self.log_analytics_endpoint,
            metrics_endpoint=self.metrics_endpoint,
            resource_ids=self.openai_resource_ids,
            gateway_table=self.gateway_table,
            llm_table=self.llm_table,
            max_concurrency=self.log_analytics_max_concurrency,
            retry_total=self.log_analytics_retry_total,
            retry_backoff_factor=self.log_analytics_retry_backoff_factor,
            retry_backoff_max=self.log_analytics_retry_backoff_max,
            query_timeout=self.log_analytics_query_timeout,
            rows_per_query=self.log_analytics_rows_per_query,
        )
