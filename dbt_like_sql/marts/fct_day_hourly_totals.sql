-- The day's 24 attributed hours' own totals, over every attributed row whatever its date: what the
-- daily rollup must add up to (the daily-equals-hourly check).
select
    coalesce(sum(total_tokens) filter (where is_billable), 0)::bigint as total_tokens,
    count(*) filter (where is_billable) as calls,
    count(*) - count(*) filter (where is_success) as failed_calls
from attributed_requests
