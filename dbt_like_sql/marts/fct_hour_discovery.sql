-- What one hour of a source shows, for onboarding (`chargeback discover`): per APIM product,
-- subscription, backend, deployment and model, the hour's trusted gateway requests (TimeGenerated in the
-- hour), those that reached the LLM log and their tokens (SequenceNumber 0), and the LLM requests that
-- have no gateway row in the hour (product, subscription and backend null). Decomposable: summing hours
-- gives the window.
with requests as (
    select
        g.product_id,
        g.subscription_id,
        g.backend_id,
        l.deployment_name,
        l.model_name,
        l.correlation_id is not null as reached_llm_log,
        coalesce(l.prompt_tokens, 0) as prompt_tokens,
        coalesce(l.completion_tokens, 0) as completion_tokens
    from stg_apim__gateway_requests as g
    left join int_llm_requests as l on g.correlation_id = l.correlation_id
    union all
    select
        null as product_id,
        null as subscription_id,
        null as backend_id,
        l.deployment_name,
        l.model_name,
        true as reached_llm_log,
        l.prompt_tokens,
        l.completion_tokens
    from int_llm_requests as l
    where l.llm_time >= $window_start and l.llm_time < $window_end
        and l.correlation_id not in (select correlation_id from stg_apim__gateway_requests)
)

select
    product_id,
    subscription_id,
    backend_id,
    deployment_name,
    model_name,
    count(*) filter (where product_id is not null)::bigint as gateway_requests,
    count(*) filter (where reached_llm_log)::bigint as llm_requests,
    sum(prompt_tokens)::bigint as prompt_tokens,
    sum(completion_tokens)::bigint as completion_tokens
from requests
group by all
order by all
