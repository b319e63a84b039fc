"""Logs exported from Log Analytics into a folder, one JSON object a line (see `source`)."""

from chargeback_pipeline.sources.folder.source import MARKER_PREFIX, FolderSource, SourceFileError

__all__ = ["MARKER_PREFIX", "FolderSource", "SourceFileError"]
