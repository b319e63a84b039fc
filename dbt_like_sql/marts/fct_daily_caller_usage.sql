-- fct_daily_product_usage split by caller: per-product usage of one day, by subscription, caller, model,
-- deployment and backend. Run instead of it when the day was attributed with callers (core/callers.py).
-- Tokens and calls count billable requests only; failed calls are counted beside them. Successful
-- calls without an LLM record (e.g. listing deployments) carry no tokens and are left out.
-- caller_id: who called ('unknown' where no configured key or header named it).
select
    usage_date,
    product_id,
    subscription_id,
    coalesce(caller_id, 'unknown') as caller_id,
    model_name,
    deployment_name,
    backend_id,
    coalesce(sum(prompt_tokens) filter (where is_billable), 0)::bigint as prompt_tokens,
    coalesce(sum(completion_tokens) filter (where is_billable), 0)::bigint as completion_tokens,
    coalesce(sum(total_tokens) filter (where is_billable), 0)::bigint as total_tokens,
    count(*) filter (where is_billable) as calls,
    count(*) filter (where not is_success) as failed_calls,
    min(request_time) as first_seen,
    max(request_time) as last_seen
from attributed_requests
where usage_date = $usage_date and (is_billable or not is_success)
group by usage_date, product_id, subscription_id, model_name, deployment_name, backend_id, caller_id
order by usage_date, product_id, subscription_id, model_name, deployment_name, backend_id, caller_id
