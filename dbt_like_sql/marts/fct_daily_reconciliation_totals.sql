-- Per backend (resource), deployment and day: the day's metric and logged tokens (the sum of its 24
-- hourly reconciliation rows) and the tokens billed to products that day (the daily product usage),
-- for every backend-deployment the hours name. The day's verdict is judged from these totals.
with hours as (
    select
        backend_id,
        min(resource_id) as resource_id,
        deployment_name,
        bool_or(has_metrics) as has_metrics,
        sum(metric_prompt_tokens)::bigint as metric_prompt_tokens,
        sum(metric_completion_tokens)::bigint as metric_completion_tokens,
        sum(logged_prompt_tokens)::bigint as logged_prompt_tokens,
        sum(logged_completion_tokens)::bigint as logged_completion_tokens
    from deployment_reconciliation
    group by backend_id, deployment_name
),

billed as (
    select
        backend_id,
        deployment_name,
        sum(prompt_tokens)::bigint as billable_prompt_tokens,
        sum(completion_tokens)::bigint as billable_completion_tokens
    from daily_product_usage
    group by backend_id, deployment_name
)

select
    $usage_date::date as usage_date,
    h.backend_id,
    h.resource_id,
    h.deployment_name,
    h.has_metrics,
    h.metric_prompt_tokens,
    h.metric_completion_tokens,
    h.logged_prompt_tokens,
    h.logged_completion_tokens,
    coalesce(b.billable_prompt_tokens, 0)::bigint as billable_prompt_tokens,
    coalesce(b.billable_completion_tokens, 0)::bigint as billable_completion_tokens
from hours as h
left join billed as b on h.backend_id = b.backend_id and h.deployment_name = b.deployment_name
order by h.deployment_name, h.backend_id
