-- One row per LLM request (CorrelationId). Token counts are taken from SequenceNumber 0 only: later
-- chunks of a long message should carry zeros, and any that do not are counted, never added.
-- A table, built once per hour: two marts read it.
select
    correlation_id,
    min(llm_time) filter (where sequence_number = 0) as llm_time,
    coalesce(min(model_name) filter (where sequence_number = 0), min(model_name)) as model_name,
    coalesce(min(deployment_name) filter (where sequence_number = 0), min(deployment_name)) as deployment_name,
    coalesce(sum(prompt_tokens) filter (where sequence_number = 0), 0)::bigint as prompt_tokens,
    coalesce(sum(completion_tokens) filter (where sequence_number = 0), 0)::bigint as completion_tokens,
    coalesce(sum(total_tokens) filter (where sequence_number = 0), 0)::bigint as total_tokens,
    count(*) as llm_records,
    count(*) filter (
        where sequence_number > 0
        and (prompt_tokens <> 0 or completion_tokens <> 0 or total_tokens <> 0)
    ) as nonzero_later_chunks,
    -- A request whose SequenceNumber 0 record is missing keeps its row (with zero tokens), flagged.
    count(*) filter (where sequence_number = 0) > 0 as has_token_record,
    -- Its trusted raw rows, re-pulled copies included: the hour's untrusted rows are the rest.
    sum(copies) as llm_rows
from stg_llm_records
group by correlation_id
