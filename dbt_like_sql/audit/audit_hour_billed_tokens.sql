-- AUDIT: what the attribution billed in the hour (the value the audit judges, not evidence): per backend
-- and deployment, the tokens of attributed requests marked billable, and the requests behind them.
select
    backend_id,
    deployment_name,
    sum(prompt_tokens)::bigint as prompt_tokens,
    sum(completion_tokens)::bigint as completion_tokens,
    count(*)::bigint as requests
from attributed_requests
where is_billable
group by backend_id, deployment_name
order by backend_id, deployment_name
