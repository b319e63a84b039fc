-- materialized: ephemeral
-- One row per trusted LLM log record (request chunk): exact re-pulls of the same record removed.
-- A record is identified by CorrelationId, RequestId and SequenceNumber; of its copies the first by
-- TimeGenerated is kept, then the one with most prompt and completion tokens, then by deployment,
-- model and total tokens, so the choice is deterministic (nulls last). `copies`: its trusted rows.
-- Few records have copies, so only their rows are compared; every other row is its record's only row.
with trusted as (
    select
        TimeGenerated, CorrelationId, coalesce(RequestId, '') as request_id, SequenceNumber, DeploymentName,
        ModelName, PromptTokens, CompletionTokens, TotalTokens
    from stg_apim__llm_checked
    where quarantine_reason is null
),

copied as (
    select CorrelationId, request_id, SequenceNumber
    from trusted
    group by CorrelationId, request_id, SequenceNumber
    having count(*) > 1
),

first_of_copies as (
    select
        CorrelationId,
        request_id,
        SequenceNumber,
        count(*) as copies,
        min(struct_pack(
            TimeGenerated, most_prompt := -PromptTokens, most_completion := -CompletionTokens, DeploymentName,
            ModelName, TotalTokens
        )) as kept
    from trusted semi join copied using (CorrelationId, request_id, SequenceNumber)
    group by CorrelationId, request_id, SequenceNumber
),

kept as (
    select *, 1 as copies
    from trusted anti join copied using (CorrelationId, request_id, SequenceNumber)
    union all by name
    select
        kept.TimeGenerated, CorrelationId, request_id, SequenceNumber, kept.DeploymentName, kept.ModelName,
        -kept.most_prompt as PromptTokens, -kept.most_completion as CompletionTokens, kept.TotalTokens, copies
    from first_of_copies
)

select
    TimeGenerated as llm_time,
    CorrelationId as correlation_id,
    request_id,
    SequenceNumber as sequence_number,
    DeploymentName as deployment_name,
    ModelName as model_name,
    PromptTokens as prompt_tokens,
    CompletionTokens as completion_tokens,
    TotalTokens as total_tokens,
    copies
from kept
