-- Per deployment: the tokens APIM logged in the hour, bucketed by the LLM record's own TimeGenerated
-- (SequenceNumber 0 records of the window), every logged request included (failed ones and those
-- without a gateway row too). Read from the hour's de-duplicated LLM requests, so the reconciliation
-- does not de-duplicate the LLM log a second time. A request whose token records name more than one
-- deployment (APIM never sends one request to two) is split record by record from stg_apim__llm_records;
-- $has_requests_on_several_deployments gates that part, so a normal hour never scans the log again.
with by_request as (
    select deployment_name, window_prompt_tokens, window_completion_tokens, window_token_records
    from int_llm_requests
    where window_token_records > 0 and not coalesce(names_several_deployments, false)
),

by_record as (
    select
        deployment_name,
        prompt_tokens as window_prompt_tokens,
        completion_tokens as window_completion_tokens,
        1 as window_token_records
    from stg_apim__llm_records
    where $has_requests_on_several_deployments
        and sequence_number = 0 and llm_time >= $window_start and llm_time < $window_end
        and correlation_id in (select correlation_id from int_llm_requests where names_several_deployments)
)

select
    deployment_name,
    sum(window_prompt_tokens)::bigint as logged_prompt_tokens,
    sum(window_completion_tokens)::bigint as logged_completion_tokens,
    sum(window_token_records)::bigint as logged_requests
from (select * from by_request union all select * from by_record)
group by deployment_name
order by deployment_name
