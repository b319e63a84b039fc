-- Per deployment and hour: the tokens the deployment itself counted (Azure Monitor metrics) against
-- the tokens APIM logged. Logged tokens are bucketed by the LLM record's own TimeGenerated, because
-- the metrics count tokens when the deployment processed them, and include every logged request
-- (failed ones and those without a gateway row too). The gap is traffic that bypassed APIM or was
-- not logged: unattributed tokens. hourly_logged_tokens is the hour's int_hour_logged_tokens, which
-- the attribution wrote (it de-duplicates the LLM log once for both).
with metered as (
    select
        ModelDeploymentName as deployment_name,
        sum(Total) filter (where MetricName = 'ProcessedPromptTokens')::bigint as metric_prompt_tokens,
        sum(Total) filter (where MetricName = 'GeneratedTokens')::bigint as metric_completion_tokens
    from raw_deployment_metrics
    where TimeStamp >= $window_start and TimeStamp < $window_end
    group by ModelDeploymentName
)

select
    $window_start::timestamptz as usage_hour,
    coalesce(m.deployment_name, l.deployment_name) as deployment_name,
    m.deployment_name is not null as has_metrics,
    coalesce(m.metric_prompt_tokens, 0)::bigint as metric_prompt_tokens,
    coalesce(m.metric_completion_tokens, 0)::bigint as metric_completion_tokens,
    coalesce(l.logged_prompt_tokens, 0)::bigint as logged_prompt_tokens,
    coalesce(l.logged_completion_tokens, 0)::bigint as logged_completion_tokens,
    coalesce(l.logged_requests, 0)::bigint as logged_requests
from metered as m
full outer join hourly_logged_tokens as l on m.deployment_name = l.deployment_name
order by deployment_name
