"""The folder source as a Dagster resource: logs exported from Log Analytics into a folder."""

from chargeback_pipeline.sources.base import LogSource
from chargeback_pipeline.sources.resource import LogTablesResource


class FolderSourceResource(LogTablesResource):
    """Reads `<source_folder>/<gateway_table>/`, `<source_folder>/<llm_table>/` and `<source_folder>/metrics/`."""

    source_folder: str

    def build_source(self) -> LogSource:
        from chargeback_pipeline.sources.folder.source import FolderSource

        return FolderSource(self.source_folder, gateway_table=self.gateway_table, llm_table=self.llm_table)
