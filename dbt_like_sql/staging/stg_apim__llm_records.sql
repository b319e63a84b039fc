-- materialized: ephemeral
-- One row per trusted LLM log record (request chunk): exact re-pulls of the same record removed.
-- A record is identified by CorrelationId, RequestId and SequenceNumber; of its copies the first by
-- TimeGenerated is kept, then the one with most prompt and completion tokens, then by deployment,
-- model and total tokens, so the choice is deterministic (nulls last). `copies`: its trusted rows.
-- Most requests have a single trusted row (one record, no copy): it is passed through as it is and
-- flagged `single_row_request`, so int_llm_requests aggregates only the other requests (chunked, copied
-- or retried). Only those requests' rows are grouped by record here, one grouping of the hour by id.
with trusted as (
    select
        partition_hour, TimeGenerated, CorrelationId, coalesce(RequestId, '') as request_id, SequenceNumber, DeploymentName,
        ModelName, PromptTokens, CompletionTokens, TotalTokens
    from stg_apim__llm_checked
    where quarantine_reason is null
),

several_rows as (
    select partition_hour, CorrelationId
    from trusted
    group by partition_hour, CorrelationId
    having count(*) > 1
),

records_of_several_rows as (
    select
        partition_hour,
        CorrelationId,
        request_id,
        SequenceNumber,
        count(*) as copies,
        min(struct_pack(
            TimeGenerated, most_prompt := -PromptTokens, most_completion := -CompletionTokens, DeploymentName,
            ModelName, TotalTokens
        )) as kept
    from trusted semi join several_rows using (partition_hour, CorrelationId)
    group by partition_hour, CorrelationId, request_id, SequenceNumber
),

kept as (
    select *, 1 as copies, true as single_row_request
    from trusted anti join several_rows using (partition_hour, CorrelationId)
    union all by name
    select
        partition_hour, kept.TimeGenerated, CorrelationId, request_id, SequenceNumber, kept.DeploymentName, kept.ModelName,
        -kept.most_prompt as PromptTokens, -kept.most_completion as CompletionTokens, kept.TotalTokens, copies,
        false as single_row_request
    from records_of_several_rows
)

select
    partition_hour,
    TimeGenerated as llm_time,
    CorrelationId as correlation_id,
    request_id,
    SequenceNumber as sequence_number,
    DeploymentName as deployment_name,
    ModelName as model_name,
    PromptTokens as prompt_tokens,
    CompletionTokens as completion_tokens,
    TotalTokens as total_tokens,
    copies,
    single_row_request
from kept
