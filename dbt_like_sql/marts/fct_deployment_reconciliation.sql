-- Per backend (Azure OpenAI resource), deployment and hour: the tokens the deployment itself counted
-- (Azure Monitor metrics) against the tokens APIM logged. Logged tokens are bucketed by the LLM record's
-- own TimeGenerated, because the metrics count tokens when the deployment processed them, and include
-- every logged request (failed ones and those without a gateway row too). The gap is traffic that
-- bypassed APIM or was not logged: unattributed tokens. hourly_logged_tokens is the hour's
-- int_hour_logged_tokens, which the attribution wrote (it de-duplicates the LLM log once for both).
--
-- One deployment name may live on several resources (a PTU resource and the pay-as-you-go resource it
-- spills over to). A metric row's resource is its backend: backend_resources maps configured resource
-- ids (pricing file `backends.<id>.resource_id`, compared case-insensitively); any other resource's
-- backend is its account name (the ARM id's last segment), APIM's usual backend naming. A metric row
-- without a resource id belongs to its deployment's only backend; when the name has several, the row
-- keeps a null backend_id, and the reconciliation refuses the hour (it says what to configure).
-- A logged record without a gateway row in this hour (backend 'unknown') is placed on its deployment's
-- only backend; when the name has several, it stays on backend 'unknown', uncharged: the resource that
-- served it counts it in its metrics, so it is inside that resource's unattributed tokens, once.
with metrics as (
    select ResourceId as resource_id, ModelDeploymentName as deployment_name, MetricName as metric_name, Total
    from raw_deployment_metrics
    where TimeStamp >= $window_start and TimeStamp < $window_end
        -- token metrics only: a utilisation row (a percentage) must not make a deployment "metered"
        and MetricName in ('ProcessedPromptTokens', 'GeneratedTokens')
),

resource_backends as (
    select distinct
        m.resource_id,
        coalesce(c.backend_id, regexp_extract(m.resource_id, '[^/]+$')) as backend_id
    from metrics as m
    left join backend_resources as c on lower(c.resource_id) = lower(m.resource_id)
    where m.resource_id is not null
),

-- Every backend known to serve a deployment name this hour: by its metrics, its logs or the configuration.
deployment_backends as (
    select distinct r.backend_id, m.deployment_name
    from metrics as m
    inner join resource_backends as r on m.resource_id = r.resource_id
    union
    select backend_id, deployment_name from hourly_logged_tokens where backend_id <> 'unknown'
    union
    select backend_id, deployment_name from backend_deployments
),

sole_backends as (
    select deployment_name, min(backend_id) as backend_id
    from deployment_backends
    group by deployment_name
    having count(*) = 1
),

metered as (
    select
        coalesce(r.backend_id, s.backend_id) as backend_id,
        min(m.resource_id) as resource_id,
        m.deployment_name,
        sum(m.Total) filter (where m.metric_name = 'ProcessedPromptTokens')::bigint as metric_prompt_tokens,
        sum(m.Total) filter (where m.metric_name = 'GeneratedTokens')::bigint as metric_completion_tokens
    from metrics as m
    left join resource_backends as r on m.resource_id = r.resource_id
    left join sole_backends as s on m.resource_id is null and m.deployment_name = s.deployment_name
    group by coalesce(r.backend_id, s.backend_id), m.deployment_name
),

logged as (
    select
        case when l.backend_id = 'unknown' then coalesce(s.backend_id, 'unknown') else l.backend_id end
            as backend_id,
        l.deployment_name,
        sum(l.logged_prompt_tokens)::bigint as logged_prompt_tokens,
        sum(l.logged_completion_tokens)::bigint as logged_completion_tokens,
        sum(l.logged_requests)::bigint as logged_requests
    from hourly_logged_tokens as l
    left join sole_backends as s on l.deployment_name = s.deployment_name
    group by all
)

select
    $window_start::timestamptz as usage_hour,
    coalesce(m.backend_id, l.backend_id) as backend_id,
    m.resource_id,
    coalesce(m.deployment_name, l.deployment_name) as deployment_name,
    m.deployment_name is not null as has_metrics,
    coalesce(m.metric_prompt_tokens, 0)::bigint as metric_prompt_tokens,
    coalesce(m.metric_completion_tokens, 0)::bigint as metric_completion_tokens,
    coalesce(l.logged_prompt_tokens, 0)::bigint as logged_prompt_tokens,
    coalesce(l.logged_completion_tokens, 0)::bigint as logged_completion_tokens,
    coalesce(l.logged_requests, 0)::bigint as logged_requests
from metered as m
full outer join logged as l on m.backend_id = l.backend_id and m.deployment_name = l.deployment_name
order by deployment_name, backend_id nulls first
