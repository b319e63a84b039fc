-- What one hour of the deployments' own metrics shows, for onboarding (`chargeback discover`): per
-- resource and deployment, the tokens Azure Monitor counted. Decomposable: summing hours gives the window.
select
    ResourceId as resource_id,
    ModelDeploymentName as deployment_name,
    coalesce(sum(Total) filter (where MetricName = 'ProcessedPromptTokens'), 0)::bigint as metric_prompt_tokens,
    coalesce(sum(Total) filter (where MetricName = 'GeneratedTokens'), 0)::bigint as metric_completion_tokens
from raw_deployment_metrics
where TimeStamp >= $window_start and TimeStamp < $window_end
    and MetricName in ('ProcessedPromptTokens', 'GeneratedTokens')  -- not the utilisation percentage
group by all
order by all
