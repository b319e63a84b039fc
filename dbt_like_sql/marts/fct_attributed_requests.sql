-- One row per gateway request of the hour, attributed to its APIM product and subscription and joined
-- to its LLM request. The request belongs to the hour (and day) of its gateway TimeGenerated; its LLM
-- record may be logged a little before or after that hour, which is why raw_llm_logs spans a margin.
-- `partition_hour`: the hourly partition (a ranged run attributes many at once); each hour's file holds
-- its own rows without it (core/attribution.py). Billable = a successful request that has an LLM record. caller_id: who called, where a configured
-- trace-record key or header named it (written only when caller keys are configured: core/callers.py).
select
    g.partition_hour,
    g.request_time,
    cast(g.request_time as date) as usage_date,
    g.correlation_id,
    g.product_id,
    g.subscription_id,
    g.caller_id,
    coalesce(l.model_name, 'unknown') as model_name,
    coalesce(l.deployment_name, 'unknown') as deployment_name,
    g.backend_id,
    g.api_id,
    g.operation_id,
    g.response_code,
    g.is_success,
    l.correlation_id is not null as has_llm_record,
    g.is_success and l.correlation_id is not null as is_billable,
    l.llm_time,
    coalesce(l.prompt_tokens, 0)::bigint as prompt_tokens,
    coalesce(l.completion_tokens, 0)::bigint as completion_tokens,
    coalesce(l.total_tokens, 0)::bigint as total_tokens,
    coalesce(l.llm_records, 0)::integer as llm_records,
    coalesce(l.nonzero_later_chunks, 0)::integer as nonzero_later_chunks,
    coalesce(l.has_token_record, false) as has_token_record,
    g.gateway_records::integer as gateway_records
from stg_apim__gateway_requests as g
left join int_llm_requests as l on g.partition_hour = l.partition_hour and g.correlation_id = l.correlation_id
order by g.partition_hour, g.request_time, g.correlation_id
