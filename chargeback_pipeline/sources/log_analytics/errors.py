"""The errors the Log Analytics source raises, apart from the SDK's own."""

from chargeback_pipeline.sources.base import TransientSourceError


class LogAnalyticsQueryError(TransientSourceError):
    """A query kept failing (after retries) or could not be made complete."""


class IncompleteWindowError(TransientSourceError):
    """The rows landed for a window do not match the window's count()."""


class UnexpectedAnswerError(ValueError):
    """The service answered 200 with a body this source cannot read."""
