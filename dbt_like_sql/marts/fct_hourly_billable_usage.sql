-- Billable usage per hour, product, subscription, model, deployment and backend: the first input of
-- the chargeback allocation (HOURLY_USAGE_SCHEMA). A request belongs to the hour and day of its gateway
-- row, as in the usage report, so the chargeback and the report count the same requests.
select
    date_trunc('hour', request_time) as usage_hour,
    product_id,
    subscription_id,
    model_name,
    deployment_name,
    backend_id,
    sum(prompt_tokens)::bigint as prompt_tokens,
    sum(completion_tokens)::bigint as completion_tokens,
    count(*)::bigint as calls
from attributed_requests
where is_billable and usage_date = $usage_date
group by usage_hour, product_id, subscription_id, model_name, deployment_name, backend_id
order by usage_hour, product_id, subscription_id, model_name, deployment_name, backend_id
