-- AUDIT (independent evidence, shares no model with the attribution): per backend and deployment, the
-- tokens of the hour's successful logged requests, read straight from the landed raw rows. Billed tokens
-- can never exceed them. A request counts once (by CorrelationId) in each hour where it has a successful
-- gateway row, under the backend of that row; its tokens are those of its SequenceNumber 0 records, each
-- record once (the largest of its copies), under every deployment its records name. Generous on purpose:
-- it is an upper bound. `llm_date`: the UTC day its token records were logged (the logged-not-billable
-- audit subtracts requests billed on one day and logged on another).
with successful as (
    select distinct
        CorrelationId as correlation_id,
        coalesce(nullif(BackendId, ''), 'unknown') as backend_id
    from raw_gateway_logs
    where IsRequestSuccess and CorrelationId is not null
        and TimeGenerated >= $window_start and TimeGenerated < $window_end
),

token_records as (
    select
        CorrelationId as correlation_id,
        coalesce(RequestId, '') as request_id,
        min(TimeGenerated) as logged_at,
        greatest(max(PromptTokens), 0) as prompt_tokens,
        greatest(max(CompletionTokens), 0) as completion_tokens
    from raw_llm_logs
    where SequenceNumber = 0 and CorrelationId is not null
    group by CorrelationId, coalesce(RequestId, '')
),

requests as (
    select
        correlation_id,
        cast(min(logged_at) as date) as llm_date,
        sum(prompt_tokens) as prompt_tokens,
        sum(completion_tokens) as completion_tokens
    from token_records
    group by correlation_id
),

request_deployments as (
    select distinct CorrelationId as correlation_id, DeploymentName as deployment_name
    from raw_llm_logs
    where SequenceNumber = 0 and CorrelationId is not null and DeploymentName is not null
)

select
    s.backend_id,
    d.deployment_name,
    r.llm_date,
    sum(r.prompt_tokens)::bigint as prompt_tokens,
    sum(r.completion_tokens)::bigint as completion_tokens,
    count(*)::bigint as requests
from successful as s
inner join requests as r on s.correlation_id = r.correlation_id
inner join request_deployments as d on s.correlation_id = d.correlation_id
group by s.backend_id, d.deployment_name, r.llm_date
order by s.backend_id, d.deployment_name, r.llm_date
