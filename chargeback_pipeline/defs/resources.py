"""Dagster resources of the pipeline's own: where data goes (lake and reports), the pricing file and
the data-quality thresholds. Each source's resource lives with its source (`sources/*/resource.py`).

Each is a `ConfigurableResource`, so its configuration shows in the UI and can be overridden per run;
`definitions.py` builds them once from `settings.py`, with secrets passed as `dg.EnvVar`.
"""

from collections.abc import Iterator
from contextlib import contextmanager

import dagster as dg
import duckdb
from azure.identity import DefaultAzureCredential
from azure.storage.blob import ContainerClient
from pydantic import PrivateAttr

from chargeback_pipeline.core.billing.pricing import Pricing, PricingError, load_pricing
from chargeback_pipeline.core.finops.budgets import Budgets, load_budgets
from chargeback_pipeline.core.finops.policy import FinOpsPolicy
from chargeback_pipeline.core.quality import QualityPolicy
from chargeback_pipeline.core.topology import BackendTopology
from chargeback_pipeline.sources.cost_export.resource import CostExportResource
from chargeback_pipeline.storage.keys import FINOPS_HUBS_CONTAINER
from chargeback_pipeline.storage.lake import Lake
from chargeback_pipeline.storage.object_store import BlobObjectStore, LocalObjectStore, ObjectStore
from chargeback_pipeline.storage.sql import DEFAULT_MEMORY_LIMIT, shared_database


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


class SqlEngineResource(dg.ConfigurableResource):
    """DuckDB, which runs the hourly assets' SQL models: the memory one run's database may hold before it
    spills to a private temporary folder (CHARGEBACK_DUCKDB_MEMORY_LIMIT, README "Performance")."""

    memory_limit: str = DEFAULT_MEMORY_LIMIT

    @contextmanager
    def database(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A `sql.shared_database` for the run's hours."""
        try:
            with shared_database(self.memory_limit) as database:
                yield database
        except duckdb.OutOfMemoryException as error:
            # Most of DuckDB's work spills to disk above the limit; what cannot (a sort's or a hash
            # table's large allocations) fails here: say which setting to raise.
            raise SqlEngineOutOfMemory(
                f"DuckDB needed more than its memory limit of {self.memory_limit} for this run and could not "
                f'spill the rest to disk: raise CHARGEBACK_DUCKDB_MEMORY_LIMIT (README "Performance"). {error}'
            ) from error


class SqlEngineOutOfMemory(RuntimeError):
    """An hourly run's DuckDB work did not fit its memory limit (CHARGEBACK_DUCKDB_MEMORY_LIMIT)."""


class DataQualityPolicy(dg.ConfigurableResource, QualityPolicy):
    """The thresholds of the asset checks (`core.quality`, README: Checks) and the deployments the
    pipeline knows (LLM rows naming another are quarantined)."""

    known_deployments: list[str] = []


class PricingResource(dg.ConfigurableResource):
    """The pricing file (CHARGEBACK_PRICING_FILE, README "Money"), read and validated once per instance.

    Only the cost assets need prices; an empty `path` means no pricing file: usage, reconciliation and
    the usage report still run, the cost assets fail saying what to configure."""

    path: str = ""
    # PTU rightsizing (CHARGEBACK_PTU_MINIMUM, _PTU_INCREMENT, _RIGHTSIZING_WARN_SAVING,
    # _RIGHTSIZING_MIN_DAYS_TO_CUT; validated in settings.py): the PTU counts worth pricing, the monthly
    # saving above which the check warns, and the days a cut must have measured.
    ptu_minimum: int = 15
    ptu_increment: int = 5
    rightsizing_warn_saving: str = "100"
    rightsizing_min_days_to_cut: int = 7
    # The Cost Management export that turns estimate days into actual ones (README "Actual cost: the Cost
    # Management export"); None: every day stays an estimate.
    cost_export: CostExportResource | None = None

    _pricing: Pricing | None = PrivateAttr(default=None)

    def pricing(self) -> Pricing:
        if not self.path:
            raise PricingError(
                "no pricing file is configured, so nothing can be priced: set CHARGEBACK_PRICING_FILE "
                "(`chargeback discover --write prices.yaml` writes a skeleton with every backend and deployment)"
            )
        if self._pricing is None:
            self._pricing = load_pricing(self.path)
        return self._pricing

    def topology(self) -> BackendTopology:
        """The backends' resources and deployments the pricing file names (none without one)."""
        return BackendTopology.of_pricing(self.pricing() if self.path else None)


class FocusExportResource(dg.ConfigurableResource):
    """The FOCUS export's version (CHARGEBACK_FOCUS_VERSION: 1.3, or 1.2 for readers that need it) and
    the optional FinOps hubs copy (README "FinOps hubs"): the hub storage account's `ingestion`
    container, reached by connection string (dg.EnvVar), account URL with Entra ID, or a local folder
    standing in for it. None of the three: no hubs copy."""

    version: str = "1.3"
    hubs_local_dir: str | None = None
    hubs_blob_account_url: str | None = None
    hubs_blob_connection_string: str | None = None
    hubs_scope_path: str = "azure-openai-chargeback"

    def hubs_store(self) -> ObjectStore | None:
        if not (self.hubs_local_dir or self.hubs_blob_account_url or self.hubs_blob_connection_string):
            return None
        return ObjectStoreResource(
            local_dir=self.hubs_local_dir,
            blob_account_url=self.hubs_blob_account_url,
            blob_connection_string=self.hubs_blob_connection_string,
            blob_container=FINOPS_HUBS_CONTAINER,
        ).store()


class FinOpsPolicyResource(dg.ConfigurableResource, FinOpsPolicy):
    """The budgets file (CHARGEBACK_BUDGETS_FILE; empty: no budgets) and the thresholds of the budget and
    anomaly checks (README "Budgets and anomalies")."""

    budgets_file: str = ""

    _budgets: Budgets | None = PrivateAttr(default=None)

    def budgets(self) -> Budgets | None:
        if self.budgets_file and self._budgets is None:
            self._budgets = load_budgets(self.budgets_file)
        return self._budgets


class WebhookError(RuntimeError):
    """The alert webhook did not accept an alert; the message never holds the URL (it carries a token)."""


class WebhookMaybeTaken(WebhookError):
    """The request was sent and no answer came (a read timeout, a dropped connection): the webhook may have
    taken the alert, so it is recorded as taken, never posted again (README "Budgets and anomalies")."""


def _never_sent(error: Exception) -> bool:
    """Whether the request surely never reached the webhook: the connection was refused or never made."""
    import requests
    from urllib3.exceptions import ConnectTimeoutError, NameResolutionError, NewConnectionError

    if isinstance(error, requests.ConnectTimeout | requests.exceptions.InvalidURL):
        return True
    cause = error.args[0] if error.args else None
    reason = getattr(cause, "reason", cause)
    return isinstance(reason, NewConnectionError | ConnectTimeoutError | NameResolutionError)


class AlertWebhookResource(dg.ConfigurableResource):
    """Where budget and anomaly alerts are posted: a Slack or Teams incoming webhook. The URL is a secret
    (CHARGEBACK_ALERT_WEBHOOK_URL, handed over as dg.EnvVar); empty: alerts are kept until one is set."""

    url: str = ""
    payload_format: str = "text"  # core.finops.alerts.payload: text | adaptive_card
    attempts: int = 3
    timeout_seconds: float = 10.0
    backoff_seconds: float = 1.0

    def post(self, body: dict, idempotency_key: str | None = None) -> None:
        """Post `body`, retried by urllib3's `Retry` (what `requests` retries with) up to `attempts` times in
        all. urllib3 2's back-off: the first retry at once, retry n after `backoff_seconds` x 2^(n-1) (at
        the defaults, 0 s then 2 s; chargeback_pipeline_tests/test_webhook_backoff.py measures it). A
        refused connection, 429 and 5xx are retried, since the webhook surely did not take the alert; a read
        timeout is not (it may have, and a retry could post it twice). Every request carries
        `Idempotency-Key: <idempotency_key>` (the alert's stable id), so a receiver that keeps keys can drop
        a repeat. Raises WebhookError naming the cause only when the
        webhook did not take the alert, WebhookMaybeTaken when the request was sent and no answer came."""
        import requests  # only the alert sensor posts
        from requests.adapters import HTTPAdapter
        from urllib3.util.retry import Retry

        retries = max(0, self.attempts - 1)
        retry = Retry(
            total=retries,
            connect=retries,
            read=0,
            status=retries,
            other=0,
            allowed_methods=None,  # POST too: only refusals are retried (above)
            status_forcelist=(429, 500, 502, 503, 504),
            backoff_factor=self.backoff_seconds,
            respect_retry_after_header=False,  # bounded by our back-off, not by the server's wish
            raise_on_status=False,
        )
        with requests.Session() as session:
            session.mount("https://", HTTPAdapter(max_retries=retry))
            session.mount("http://", HTTPAdapter(max_retries=retry))
            try:
                headers = {"Idempotency-Key": idempotency_key} if idempotency_key else None
                response = session.post(self.url, json=body, timeout=self.timeout_seconds, headers=headers)
            except requests.RequestException as error:
                # Its text names the URL (which carries a token): only the kind of failure is kept.
                problem = f"{type(error).__name__}, no response"
                if not _never_sent(error):
                    raise WebhookMaybeTaken(
                        f"the alert webhook (CHARGEBACK_ALERT_WEBHOOK_URL) got the alert but did not answer "
                        f"({problem}): it may have taken it"
                    ) from None
            else:
                if response.status_code < 300:
                    return
                problem = f"HTTP {response.status_code}"
        raise WebhookError(f"the alert webhook (CHARGEBACK_ALERT_WEBHOOK_URL) did not take the alert: {problem}")
