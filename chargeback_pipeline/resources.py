"""Dagster resources: where data comes from (the source) and where it goes (lake and reports).

Each is a `ConfigurableResource`, so its configuration shows in the UI and can be overridden per run;
`definitions.py` builds them once from `settings.py`, with secrets passed as `dg.EnvVar`.
"""

from datetime import datetime

import dagster as dg
from azure.identity import DefaultAzureCredential
from azure.storage.blob import ContainerClient
from pydantic import PrivateAttr

from chargeback_pipeline.lake import Lake
from chargeback_pipeline.object_store import BlobObjectStore, LocalObjectStore, ObjectStore
from chargeback_pipeline.pricing import Pricing, load_pricing
from chargeback_pipeline.settings import SourceKind
from chargeback_pipeline.sources.base import LogSource


class ObjectStoreResource(dg.ConfigurableResource):
    """A local folder, or a prefix in an Azure Blob container (connection string or Entra ID)."""

    local_dir: str | None = None
    blob_account_url: str | None = None
    blob_connection_string: str | None = None
    blob_container: str = "chargeback"
    blob_prefix: str = ""

    def store(self) -> ObjectStore:
        if self.blob_connection_string:
            container = ContainerClient.from_connection_string(self.blob_connection_string, self.blob_container)
            return BlobObjectStore(container, self.blob_prefix)
        if self.blob_account_url:
            container = ContainerClient(self.blob_account_url, self.blob_container, DefaultAzureCredential())
            return BlobObjectStore(container, self.blob_prefix)
        if not self.local_dir:
            raise ValueError("an object store needs local_dir, blob_account_url or blob_connection_string")
        return LocalObjectStore(self.local_dir)

    def lake(self) -> Lake:
        return Lake(self.store())


class LogSourceResource(dg.ConfigurableResource):
    """The APIM logs and deployment metrics: simulated (default), an exported folder, or Log Analytics."""

    kind: str = SourceKind.simulated.value
    folder: str | None = None
    simulated_requests_per_hour: int = 2000
    simulated_seed: int = 20260101
    # Fault injection for drills and tests: SimulationProfile fractions by name (e.g. bypass_fraction),
    # and hours (ISO 8601, UTC) whose gateway rows the simulator loses.
    simulated_faults: dict[str, float] = {}
    simulated_missing_gateway_hours: list[str] = []
    gateway_table: str = "ApiManagementGatewayLogs"
    llm_table: str = "ApiManagementGatewayLlmLog"
    log_analytics_workspace_id: str | None = None
    log_analytics_endpoint: str = "https://api.loganalytics.io/v1"
    metrics_endpoint: str | None = None
    openai_resource_ids: list[str] = []
    # A fetch that still fails after the SDK's own retries (TransientSourceError) retries the step this
    # many times, after this delay doubling each time (30, 60, 120 s). Other errors fail at once.
    step_retries: int = 3
    step_retry_delay_seconds: float = 30.0
    # Log Analytics query tuning (defaults suit production; tests shorten the backoff).
    log_analytics_max_concurrency: int = 5
    log_analytics_retry_total: int = 6
    log_analytics_retry_backoff_factor: float = 1.0
    log_analytics_retry_backoff_max: float = 60.0
    log_analytics_query_timeout: int = 300
    log_analytics_rows_per_query: int = 100_000
    # LLM rows are pulled for the hour plus this margin on each side, to join records logged across
    # the hour boundary from their gateway row.
    llm_margin_minutes: int = 10

    _source: LogSource | None = PrivateAttr(default=None)

    def source(self) -> LogSource:
        # One source per resource instance, so a ranged run reuses clients and parsed files.
        if self._source is None:
            self._source = self._build()
        return self._source

    def _build(self) -> LogSource:
        kind = SourceKind(self.kind)
        if kind == SourceKind.simulated:
            from chargeback_pipeline.sources.simulated import SimulatedSource, SimulationProfile

            missing = frozenset(datetime.fromisoformat(h) for h in self.simulated_missing_gateway_hours)
            return SimulatedSource(
                SimulationProfile(
                    requests_per_hour=self.simulated_requests_per_hour,
                    seed=self.simulated_seed,
                    missing_gateway_hours=missing,
                    **self.simulated_faults,
                )
            )
        if kind == SourceKind.folder:
            from chargeback_pipeline.sources.folder import FolderSource

            if not self.folder:
                raise ValueError("the folder source needs a folder (CHARGEBACK_SOURCE_FOLDER)")
            return FolderSource(self.folder, gateway_table=self.gateway_table, llm_table=self.llm_table)
        from chargeback_pipeline.sources.log_analytics import LogAnalyticsSource

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


class DataQualityPolicy(dg.ConfigurableResource):
    """Thresholds of the asset checks and the deployments the pipeline knows (README: Checks)."""

    reconciliation_warn_percent: float = 2.0
    reconciliation_block_percent: float = 10.0
    reconciliation_warn_tokens: int = 0
    reconciliation_block_tokens: int = 0
    reconciliation_min_tokens: int = 10_000
    quarantine_max_percent: float = 1.0
    orphan_llm_max_percent: float = 5.0
    known_deployments: list[str] = []


class PricingResource(dg.ConfigurableResource):
    """The pricing file (CHARGEBACK_PRICING_FILE, README "Money"), read and validated once per instance."""

    path: str

    _pricing: Pricing | None = PrivateAttr(default=None)

    def pricing(self) -> Pricing:
        if self._pricing is None:
            self._pricing = load_pricing(self.path)
        return self._pricing
