-- AUDIT (independent evidence, shares no model with the attribution): the tokens APIM logged in the hour
-- (SequenceNumber 0 records by their own TimeGenerated, each record once), by what the request's gateway
-- log says: `failed` (its first gateway row is a failure), `no_gateway_row` (none landed near it) or
-- `successful` (billed on `gateway_date`, the UTC day of that row). Read straight from the landed raw rows;
-- raw_gateway_logs holds the gateway rows of the hour and of the hours beside it. The first gateway row is
-- the earliest, a success before a failure at the same time (README: a request's gateway row).
-- backend_id: that row's backend; 'unknown' without a gateway row (the caller places those by the pricing
-- file's deployments).
with token_records as (
    select
        CorrelationId as correlation_id,
        coalesce(RequestId, '') as request_id,
        min(DeploymentName) as deployment_name,
        greatest(max(PromptTokens), 0) as prompt_tokens,
        greatest(max(CompletionTokens), 0) as completion_tokens
    from raw_llm_logs
    where SequenceNumber = 0 and CorrelationId is not null and DeploymentName is not null
        and TimeGenerated >= $window_start and TimeGenerated < $window_end
    group by CorrelationId, coalesce(RequestId, '')
),

first_gateway_rows as (
    select
        CorrelationId as correlation_id,
        arg_min(
            struct_pack(succeeded := IsRequestSuccess, backend := coalesce(nullif(BackendId, ''), 'unknown'),
                at := TimeGenerated),
            struct_pack(at := TimeGenerated, failed := not IsRequestSuccess)
        ) as first_row
    from raw_gateway_logs
    semi join token_records on CorrelationId = token_records.correlation_id
    where IsRequestSuccess is not null
    group by CorrelationId
)

select
    coalesce(g.first_row.backend, 'unknown') as backend_id,
    t.deployment_name,
    case
        when g.correlation_id is null then 'no_gateway_row'
        when g.first_row.succeeded then 'successful'
        else 'failed'
    end as request_status,
    case when g.first_row.succeeded then cast(g.first_row.at as date) end as gateway_date,
    sum(t.prompt_tokens)::bigint as prompt_tokens,
    sum(t.completion_tokens)::bigint as completion_tokens,
    count(*)::bigint as token_records
from token_records as t
left join first_gateway_rows as g on t.correlation_id = g.correlation_id
group by all
order by all
