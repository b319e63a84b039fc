"""Raw rows as the lake lands them (GATEWAY_LOG_SCHEMA, LLM_LOG_SCHEMA), built by hand for the attribution's
tests: one builder per table, at an absolute time."""

from datetime import datetime


def gateway(cid: str, at: datetime, product="alpha", success=True, backend="ptu") -> dict:
    return {
        "TimeGenerated": at,
        "CorrelationId": cid,
        "IsRequestSuccess": success,
        "ProductId": product,
        "ApimSubscriptionId": "sub-1",
        "ApiId": "azure-openai",
        "OperationId": "chat",
        "BackendId": backend,
        "ResponseCode": 200 if success else 500,
    }


def llm(cid: str, at: datetime, prompt: int, completion: int, deployment="gpt-ptu", sequence=0, request=None) -> dict:
    return {
        "TimeGenerated": at,
        "CorrelationId": cid,
        "RequestId": request or f"req-{cid}",
        "DeploymentName": deployment,
        "ModelName": "gpt-4.1",
        "PromptTokens": prompt,
        "CompletionTokens": completion,
        "TotalTokens": prompt + completion,
        "SequenceNumber": sequence,
    }
