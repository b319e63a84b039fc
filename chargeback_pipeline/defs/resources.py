"""Dagster resources of the pipeline's own: where data goes (lake and reports), the pricing file and
the data-quality thresholds. Each source's resource lives with its source (`sources/*/resource.py`).

Each is a `ConfigurableResource`, so its configuration shows in the UI and can be overridden per run;
`definitions.py` builds them once from `settings.py`, with secrets passed as `dg.EnvVar`.
"""

import dagster as dg
from azure.identity import DefaultAzureCredential
from azure.storage.blob import ContainerClient
from pydantic import PrivateAttr

from chargeback_pipeline.core.billing.pricing import Pricing, PricingError, load_pricing
from chargeback_pipeline.core.quality import QualityPolicy
from chargeback_pipeline.core.topology import BackendTopology
from chargeback_pipeline.storage.lake import Lake
from chargeback_pipeline.storage.object_store import BlobObjectStore, LocalObjectStore, ObjectStore


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


class DataQualityPolicy(dg.ConfigurableResource, QualityPolicy):
    """The thresholds of the asset checks (`core.quality`, README: Checks) and the deployments the
    pipeline knows (LLM rows naming another are quarantined)."""

    known_deployments: list[str] = []


class PricingResource(dg.ConfigurableResource):
    """The pricing file (CHARGEBACK_PRICING_FILE, README "Money"), read and validated once per instance.

    Only the cost assets need prices; an empty `path` means no pricing file: usage, reconciliation and
    the usage report still run, the cost assets fail saying what to configure."""

    path: str = ""

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
