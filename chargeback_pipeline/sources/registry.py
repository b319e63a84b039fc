"""The one registration of every source, by the name CHARGEBACK_SOURCE takes."""

from chargeback_pipeline.sources.folder.resource import FolderSourceResource
from chargeback_pipeline.sources.log_analytics.resource import LogAnalyticsSourceResource
from chargeback_pipeline.sources.resource import LogSourceResource
from chargeback_pipeline.sources.simulated.resource import SimulatedSourceResource

SOURCE_RESOURCES: dict[str, type[LogSourceResource]] = {
    "simulated": SimulatedSourceResource,
    "folder": FolderSourceResource,
    "log_analytics": LogAnalyticsSourceResource,
}
