"""The errors the Log Analytics source raises, apart from the SDK's own."""


class LogAnalyticsQueryError(RuntimeError):
    """A query kept failing (after retries) or could not be made complete."""


class IncompleteWindowError(RuntimeError):
    """The rows landed for a window do not match the window's count()."""


class UnexpectedAnswerError(ValueError):
    """The service answered 200 with a body this source cannot read."""
