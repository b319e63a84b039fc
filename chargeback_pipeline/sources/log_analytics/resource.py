"""The Log Analytics source as a Dagster resource: the APIM tables of a workspace through the real
`LogsQueryClient`, and the deployments' token metrics through Azure Monitor's `MetricsClient`."""

import re

from pydantic import Field, model_validator

from chargeback_pipeline.sources.base import LogSource
from chargeback_pipeline.sources.resource import LogTablesResource

_OPENAI_RESOURCE_ID = re.compile(
    r"/subscriptions/[^/]+/resourceGroups/[^/]+/providers/Microsoft\.CognitiveServices/accounts/[^/]+",
    re.IGNORECASE,
)


class LogAnalyticsSourceResource(LogTablesResource):
    """Auth: DefaultAzureCredential (managed identity, workload identity or az login); no secret here."""

    log_analytics_workspace_id: str
    log_analytics_endpoint: str = "https://api.loganalytics.io/v1"
    metrics_endpoint: str | None = None
    # ARM ids of the Azure OpenAI resources whose token metrics the reconciliation reads. Required,
    # unless the reconciliation with Azure Monitor is switched off on purpose (below).
    openai_resource_ids: list[str] = []
    # False: no metrics are read, so nothing proves the logged tokens against what the deployments
    # metered; every hour's metrics are landed as declared empty, and the reports must say so.
    reconcile_with_azure_monitor: bool = True
    # Query tuning (defaults suit production; tests shorten the backoff).
    log_analytics_max_concurrency: int = Field(default=5, ge=1, le=5)
    log_analytics_retry_total: int = Field(default=6, ge=0, le=20)
    log_analytics_retry_backoff_factor: float = Field(default=1.0, ge=0)
    log_analytics_retry_backoff_max: float = Field(default=60.0, ge=0)
    log_analytics_query_timeout: int = Field(default=300, ge=1, le=600)
    log_analytics_rows_per_query: int = Field(default=100_000, ge=1, le=500_000)
    # The time bound of one fetch (a table's hour: its count and every piece; or an hour's metrics), all
    # attempts, retries and waits included. With the step retries, a source that stays unreachable fails
    # a step within 4 x 600 + 30 + 60 + 120 = 2610 s by default, inside the hourly schedule's hour.
    log_analytics_fetch_timeout_seconds: float = Field(default=600.0, gt=0, le=3600)

    @model_validator(mode="after")
    def _reconciliation_configured(self) -> "LogAnalyticsSourceResource":
        if not self.reconcile_with_azure_monitor:
            if self.openai_resource_ids:
                raise ValueError(
                    "CHARGEBACK_RECONCILE_WITH_AZURE_MONITOR=false contradicts CHARGEBACK_OPENAI_RESOURCE_IDS="
                    f"{','.join(self.openai_resource_ids)}: unset one of them"
                )
            return self
        if not self.openai_resource_ids:
            raise ValueError(
                "CHARGEBACK_OPENAI_RESOURCE_IDS is not set: the reconciliation with Azure Monitor needs the ARM "
                "ids of the Azure OpenAI resources behind APIM (comma-separated /subscriptions/<sub>/"
                "resourceGroups/<rg>/providers/Microsoft.CognitiveServices/accounts/<name>) and "
                "CHARGEBACK_METRICS_ENDPOINT; without them no token would be proven against what the deployments "
                "metered. To run without reconciliation on purpose, set CHARGEBACK_RECONCILE_WITH_AZURE_MONITOR=false"
            )
        wrong = [rid for rid in self.openai_resource_ids if not _OPENAI_RESOURCE_ID.fullmatch(rid)]
        if wrong:
            raise ValueError(
                f"CHARGEBACK_OPENAI_RESOURCE_IDS: not the ARM id of an Azure OpenAI resource: {', '.join(wrong)} "
                "(expected /subscriptions/<sub>/resourceGroups/<rg>/providers/Microsoft.CognitiveServices/"
                "accounts/<name>)"
            )
        if not self.metrics_endpoint:
            raise ValueError(
                "CHARGEBACK_METRICS_ENDPOINT is not set: CHARGEBACK_OPENAI_RESOURCE_IDS are read from their "
                "region's metrics endpoint, e.g. https://eastus.metrics.monitor.azure.com"
            )
        return self

    def reconciliation_off_reason(self) -> str | None:
        if self.reconcile_with_azure_monitor:
            return None
        return "switched off by configuration (CHARGEBACK_RECONCILE_WITH_AZURE_MONITOR=false): no metrics are read"

    def fetch_time_bound_seconds(self) -> float | None:
        return self.log_analytics_fetch_timeout_seconds

    def build_source(self) -> LogSource:
        from chargeback_pipeline.sources.log_analytics.source import LogAnalyticsSource

        return LogAnalyticsSource(
            workspace_id=self.log_analytics_workspace_id,
            logs_endpoint=self.log_analytics_endpoint,
            metrics_endpoint=self.metrics_endpoint,
            resource_ids=self.openai_resource_ids if self.reconcile_with_azure_monitor else [],
            gateway_table=self.gateway_table,
            llm_table=self.llm_table,
            max_concurrency=self.log_analytics_max_concurrency,
            retry_total=self.log_analytics_retry_total,
            retry_backoff_factor=self.log_analytics_retry_backoff_factor,
            retry_backoff_max=self.log_analytics_retry_backoff_max,
            query_timeout=self.log_analytics_query_timeout,
            rows_per_query=self.log_analytics_rows_per_query,
            fetch_timeout=self.log_analytics_fetch_timeout_seconds,
            callers=self.caller_identity(),
        )
