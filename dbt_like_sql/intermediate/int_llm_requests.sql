-- One row per LLM request (CorrelationId) of each partition's hour (`partition_hour`). Token counts are taken from SequenceNumber 0 only: later
-- chunks of a long message should carry zeros, and any that do not are counted, never added.
-- The hour's logged tokens for the reconciliation (int_hour_logged_tokens) come from here too, so
-- the LLM log is de-duplicated once per hour. A table, built once per hour: several models read it.
-- A request with a single trusted row (most of them) is that row, projected: the same values the
-- aggregate below gives for one row, without a hash table holding every request of the hour.
with records as (
    select * from stg_apim__llm_records
)

select
    partition_hour,
    correlation_id,
    case when sequence_number = 0 then llm_time end as llm_time,
    model_name,
    deployment_name,
    case when sequence_number = 0 then coalesce(prompt_tokens, 0) else 0 end::bigint as prompt_tokens,
    case when sequence_number = 0 then coalesce(completion_tokens, 0) else 0 end::bigint as completion_tokens,
    case when sequence_number = 0 then coalesce(total_tokens, 0) else 0 end::bigint as total_tokens,
    1::bigint as llm_records,
    case
        when sequence_number > 0 and (prompt_tokens <> 0 or completion_tokens <> 0 or total_tokens <> 0) then 1
        else 0
    end::bigint as nonzero_later_chunks,
    sequence_number = 0 as has_token_record,
    copies::hugeint as llm_rows,
    case
        when sequence_number = 0 and llm_time >= partition_hour and llm_time < partition_hour + interval 1 hour then 1 else 0
    end::bigint as window_token_records,
    case
        when sequence_number = 0 and llm_time >= partition_hour and llm_time < partition_hour + interval 1 hour
            then coalesce(prompt_tokens, 0)
        else 0
    end::bigint as window_prompt_tokens,
    case
        when sequence_number = 0 and llm_time >= partition_hour and llm_time < partition_hour + interval 1 hour
            then coalesce(completion_tokens, 0)
        else 0
    end::bigint as window_completion_tokens,
    case when sequence_number = 0 then false end as names_several_deployments
from records
where single_row_request

union all

select
    partition_hour,
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
    sum(copies) as llm_rows,
    -- Logged inside the hour by the record's own time (the file spans a margin around the hour): what
    -- the deployment's metrics for this hour also counted.
    count(*) filter (where sequence_number = 0 and llm_time >= partition_hour and llm_time < partition_hour + interval 1 hour)
        as window_token_records,
    coalesce(sum(prompt_tokens) filter (
        where sequence_number = 0 and llm_time >= partition_hour and llm_time < partition_hour + interval 1 hour
    ), 0)::bigint as window_prompt_tokens,
    coalesce(sum(completion_tokens) filter (
        where sequence_number = 0 and llm_time >= partition_hour and llm_time < partition_hour + interval 1 hour
    ), 0)::bigint as window_completion_tokens,
    -- APIM sends a request to one deployment; a request whose token records name two is reconciled
    -- record by record instead (int_hour_logged_tokens).
    min(deployment_name) filter (where sequence_number = 0)
        <> max(deployment_name) filter (where sequence_number = 0) as names_several_deployments
from records
where not single_row_request
group by partition_hour, correlation_id
