-- Per backend (APIM BackendId) and deployment of the hour: the gateway requests attributed to it, those it
-- refused with 429 (a PTU backend's "saturated"), and their tokens. The PTU utilisation reads it: a PTU
-- deployment's own row is what it served, its pay-as-you-go twin's row (same deployment name) what spilled.
-- Every attributed request counts (failed ones too: a 429'd prompt may still be counted by the service).
select
    backend_id,
    deployment_name,
    count(*)::bigint as requests,
    (count(*) filter (where response_code = 429))::bigint as throttled_requests,
    coalesce(sum(prompt_tokens), 0)::bigint as prompt_tokens,
    coalesce(sum(completion_tokens), 0)::bigint as completion_tokens
from attributed_requests
group by all
order by all
