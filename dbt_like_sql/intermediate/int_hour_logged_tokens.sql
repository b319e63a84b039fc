-- Per hour (`partition_hour`), backend and deployment: the tokens APIM logged in the hour, bucketed by the LLM record's own TimeGenerated
-- (SequenceNumber 0 records of the window), every logged request included (failed ones and those
-- without a gateway row too). Read from the hour's de-duplicated LLM requests, so the reconciliation
-- does not de-duplicate the LLM log a second time. A request whose token records name more than one
-- deployment (APIM never sends one request to two) is split record by record from stg_apim__llm_records;
-- $has_requests_on_several_deployments gates that part, so a normal hour never scans the log again.
-- The backend is the one of the request's gateway row: among the hour's attributed requests (the file
-- the attribution just wrote), else among the gateway rows of the hour's margins (raw_gateway_logs spans
-- the hour plus the join margin: a request whose gateway row sits across the hour boundary). A record
-- with no gateway row in either has backend 'unknown': fct_deployment_reconciliation places it.
with backends as (
    select partition_hour, correlation_id, backend_id
    from attributed_requests
    where has_llm_record
    union all
    select m.partition_hour, m.CorrelationId as correlation_id, min(m.BackendId) as backend_id
    from raw_gateway_logs as m
    anti join attributed_requests as a on m.partition_hour = a.partition_hour and m.CorrelationId = a.correlation_id
    where (m.TimeGenerated < m.partition_hour or m.TimeGenerated >= m.partition_hour + interval 1 hour)
        and nullif(trim(m.BackendId), '') is not null
        and m.CorrelationId is not null
    group by m.partition_hour, m.CorrelationId
),

by_request as (
    select
        partition_hour, deployment_name, correlation_id, window_prompt_tokens, window_completion_tokens,
        window_token_records
    from int_llm_requests
    where window_token_records > 0 and not coalesce(names_several_deployments, false)
),

by_record as (
    select
        r.partition_hour,
        r.deployment_name,
        r.correlation_id,
        r.prompt_tokens as window_prompt_tokens,
        r.completion_tokens as window_completion_tokens,
        1 as window_token_records
    from stg_apim__llm_records as r
    semi join (select partition_hour, correlation_id from int_llm_requests where names_several_deployments) as s
        on r.partition_hour = s.partition_hour and r.correlation_id = s.correlation_id
    where $has_requests_on_several_deployments
        and r.sequence_number = 0 and r.llm_time >= r.partition_hour and r.llm_time < r.partition_hour + interval 1 hour
)

select
    r.partition_hour,
    coalesce(b.backend_id, 'unknown') as backend_id,
    r.deployment_name,
    sum(r.window_prompt_tokens)::bigint as logged_prompt_tokens,
    sum(r.window_completion_tokens)::bigint as logged_completion_tokens,
    sum(r.window_token_records)::bigint as logged_requests
from (select * from by_request union all select * from by_record) as r
left join backends as b on r.partition_hour = b.partition_hour and r.correlation_id = b.correlation_id
group by all
order by r.partition_hour, r.deployment_name, backend_id
