"""The errors the Log Analytics source raises, apart from the SDK's own, and what a failed query means.

A failed query is transient (throttled, 5xx, timed out, connection failed, the fetch's time bound
spent: the step retries it) or permanent (400, 401, 403, 404: it fails at once, saying what to fix).
"""

from chargeback_pipeline.sources.azure_errors import http_status, is_transient, service_words
from chargeback_pipeline.sources.base import PermanentSourceError, TransientSourceError

ROLE_HELP = "README, Production: the roles the identity needs"


class LogAnalyticsQueryError(RuntimeError):
    """A query failed (after the SDK's retries) or could not be made complete."""


class TransientQueryError(LogAnalyticsQueryError, TransientSourceError):
    """Throttled, unavailable, timed out or unreachable, still after the SDK's retries: the step retries."""


class PermanentQueryError(LogAnalyticsQueryError, PermanentSourceError):
    """The service refused the query (400, 401, 403, 404): asking again gives the same answer."""


class IncompleteWindowError(TransientSourceError):
    """The rows landed for a window do not match the window's count()."""


class UnexpectedAnswerError(ValueError):
    """The service answered 200 with a body this source cannot read."""


def query_failure(error: BaseException, *, label: str, workspace_id: str, endpoint: str) -> LogAnalyticsQueryError:
    """The error to raise for a failed query of `label` (`workspace W, table T, window X`)."""
    said = service_words(error)
    if is_transient(error):
        return TransientQueryError(f"Log Analytics query failed for {label}: {said}")
    status = http_status(error)
    if status == 400:
        fix = (
            "the workspace refused the query. Check that the table exists in the workspace (APIM's diagnostic "
            "settings send GatewayLogs and GatewayLlmLogs in resource-specific mode; CHARGEBACK_GATEWAY_TABLE, "
            "CHARGEBACK_LLM_TABLE name the tables)"
        )
    elif status == 401 or status is None:
        fix = (
            "the identity is not authenticated. Check the identity DefaultAzureCredential uses (managed or "
            "workload identity, AZURE_CLIENT_ID, `az login`) and that CHARGEBACK_LOG_ANALYTICS_ENDPOINT "
            f"({endpoint}) is in the identity's cloud"
        )
    elif status == 403:
        fix = (
            f"the identity lacks the role Log Analytics Reader on the Log Analytics workspace {workspace_id}: "
            f"assign it ({ROLE_HELP})"
        )
    elif status == 404:
        fix = (
            f"workspace {workspace_id} was not found at {endpoint}. Check CHARGEBACK_LOG_ANALYTICS_WORKSPACE_ID "
            "(the workspace id, a GUID, not its resource id) and CHARGEBACK_LOG_ANALYTICS_ENDPOINT"
        )
    else:
        fix = "the service refused the query"
    return PermanentQueryError(f"Log Analytics query failed for {label}: {said}. Not retried: {fix}")
