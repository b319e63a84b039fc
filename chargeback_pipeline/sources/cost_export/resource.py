"""The cost export as a Dagster resource: a Blob container (Entra ID or connection string) or a folder."""

import dagster as dg
from azure.identity import DefaultAzureCredential
from azure.storage.blob import ContainerClient

from chargeback_pipeline.sources.cost_export.source import CostExportSource
from chargeback_pipeline.storage.object_store import BlobObjectStore, LocalObjectStore


class CostExportResource(dg.ConfigurableResource):
    """Where Cost Management writes the FocusCost export: `container` (Microsoft's and the FinOps hubs'
    usual name is `msexports`) of a storage account, or a local folder standing in for the container,
    and the export's root folder in it. Nothing set: no export, every day stays an estimate."""

    local_dir: str | None = None
    blob_account_url: str | None = None
    blob_connection_string: str | None = None
    container: str = "msexports"
    root_folder: str = ""
    # The estimate-vs-actual check warns when a product's day differs from its estimate by more than this
    # share of the estimate (CHARGEBACK_COST_VARIANCE_WARN_SHARE).
    variance_warn_share: str = "0.10"

    def is_configured(self) -> bool:
        return bool(self.local_dir or self.blob_account_url or self.blob_connection_string)

    def source(self) -> CostExportSource:
        if self.blob_connection_string:
            client = ContainerClient.from_connection_string(self.blob_connection_string, self.container)
            return CostExportSource(BlobObjectStore(client), self.root_folder)
        if self.blob_account_url:
            client = ContainerClient(self.blob_account_url, self.container, DefaultAzureCredential())
            return CostExportSource(BlobObjectStore(client), self.root_folder)
        if not self.local_dir:
            raise ValueError("the cost export needs local_dir, blob_account_url or blob_connection_string")
        return CostExportSource(LocalObjectStore(self.local_dir), self.root_folder)
