-- Per backend, deployment and minute of the hour: the tokens of the successful attributed requests (the
-- load a PTU deployment's capacity holds, minute by minute, as PTU capacity is sold) and the requests
-- answered 429. The PTU utilisation reads it: a PTU deployment's rows are what it served, its pay-as-you-go
-- twin's rows what spilled, each minute; the rightsizing's what-if replays these minutes at other counts.
select
    backend_id,
    deployment_name,
    extract(minute from request_time)::integer as minute_of_hour,
    coalesce(sum(prompt_tokens) filter (where is_success), 0)::bigint as prompt_tokens,
    coalesce(sum(completion_tokens) filter (where is_success), 0)::bigint as completion_tokens,
    (count(*) filter (where response_code = 429))::bigint as throttled_requests
from attributed_requests
group by all
order by all
