-- One row per trusted LLM log record (request chunk): exact re-pulls of the same record removed.
-- A record is identified by CorrelationId, RequestId and SequenceNumber.
select
    TimeGenerated as llm_time,
    CorrelationId as correlation_id,
    coalesce(RequestId, '') as request_id,
    SequenceNumber as sequence_number,
    DeploymentName as deployment_name,
    ModelName as model_name,
    PromptTokens as prompt_tokens,
    CompletionTokens as completion_tokens,
    TotalTokens as total_tokens
from stg_llm_checked
where quarantine_reason is null
qualify row_number() over (
    partition by CorrelationId, coalesce(RequestId, ''), SequenceNumber
    order by TimeGenerated, PromptTokens desc, CompletionTokens desc
) = 1
