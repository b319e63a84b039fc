"""The folder source as a Dagster resource: logs exported from Log Analytics into a folder."""

from chargeback_pipeline.sources.base import LogSource
from chargeback_pipeline.sources.resource import LogTablesResource


class FolderSourceResource(LogTablesResource):
    """Reads `<source_folder>/<gateway_table>/`, `<source_folder>/<llm_table>/` and `<source_folder>/metrics/`.

    Every fetch must see its input: a missing or unreadable folder or file, an empty file, or an hour no
    file covers fails at once (never retried), naming the path. An hour that really had no rows is
    declared by a marker file in the table's folder, `_EMPTY_<YYYY-MM-DDTHH>` (or `_EMPTY_<YYYY-MM-DD>`
    for a whole day, UTC), whose content is the reason; it is logged and recorded on the hour's
    materialization (`sources.folder.source`). The LLM margins are not judged, only the hour itself.
    """

    source_folder: str

    def build_source(self) -> LogSource:
        from chargeback_pipeline.sources.folder.source import FolderSource

        return FolderSource(
            self.source_folder,
            gateway_table=self.gateway_table,
            llm_table=self.llm_table,
            callers=self.caller_identity(),
        )
