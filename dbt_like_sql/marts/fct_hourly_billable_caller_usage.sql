-- fct_hourly_billable_usage split by caller, run instead of it when the day was attributed with callers
-- (core/callers.py): billable usage per hour, product, subscription, caller, model, deployment and
-- backend, the first input of the chargeback allocation (HOURLY_USAGE_SCHEMA plus caller_id). A request
-- belongs to the hour and day of its gateway row, as in the usage report.
-- caller_id: who called ('unknown' where no configured key or header named it).
select
    date_trunc('hour', request_time) as usage_hour,
    product_id,
    subscription_id,
    coalesce(caller_id, 'unknown') as caller_id,
    model_name,
    deployment_name,
    backend_id,
    sum(prompt_tokens)::bigint as prompt_tokens,
    sum(completion_tokens)::bigint as completion_tokens,
    count(*)::bigint as calls
from attributed_requests
where is_billable and usage_date = $usage_date
group by usage_hour, product_id, subscription_id, model_name, deployment_name, backend_id, caller_id
order by usage_hour, product_id, subscription_id, model_name, deployment_name, backend_id, caller_id
