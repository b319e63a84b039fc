-- Per backend (resource) and deployment: tokens APIM logged during the day that no product is billed
-- for (failed requests that still consumed tokens, LLM records without a gateway row placed on the
-- backend, and requests whose gateway row falls on the other side of midnight), the third input of the
-- chargeback allocation. On a pay-as-you-go resource Azure invoices them like any other token, so the
-- chargeback carries them on a `logged-not-billable` line and the day adds up to the invoice. A day
-- whose requests were billed more tokens than it logged (midnight crossings the other way) keeps the
-- excess in the clipped_* columns, which the chargeback reports.
with logged as (
    select
        backend_id,
        deployment_name,
        sum(logged_prompt_tokens)::bigint as prompt_tokens,
        sum(logged_completion_tokens)::bigint as completion_tokens
    from deployment_reconciliation
    where backend_id <> 'unknown'
    group by backend_id, deployment_name
),

billed as (
    select
        backend_id,
        deployment_name,
        sum(prompt_tokens)::bigint as prompt_tokens,
        sum(completion_tokens)::bigint as completion_tokens
    from attributed_requests
    where is_billable and usage_date = $usage_date
    group by backend_id, deployment_name
)

select
    $usage_date::date as usage_date,
    l.backend_id,
    l.deployment_name,
    greatest(l.prompt_tokens - coalesce(b.prompt_tokens, 0), 0)::bigint as prompt_tokens,
    greatest(l.completion_tokens - coalesce(b.completion_tokens, 0), 0)::bigint as completion_tokens,
    greatest(coalesce(b.prompt_tokens, 0) - l.prompt_tokens, 0)::bigint as clipped_prompt_tokens,
    greatest(coalesce(b.completion_tokens, 0) - l.completion_tokens, 0)::bigint as clipped_completion_tokens
from logged as l
left join billed as b on l.backend_id = b.backend_id and l.deployment_name = b.deployment_name
order by l.deployment_name, l.backend_id
