-- Each hour's raw rows, against which the trusted rows that attribution used are counted: the
-- difference is the rows that failed the checks. Counting reads row counts and one time column only.
-- Also the hour's requests whose SequenceNumber 0 records name several deployments, which gate the
-- record-by-record split of int_hour_logged_tokens. One row per partition_hour with raw rows (an hour
-- without any counts zero everywhere: core/attribution.py).
with gateway as (
    select partition_hour, count(*) as gateway_rows
    from raw_gateway_logs
    where TimeGenerated >= partition_hour and TimeGenerated < partition_hour + interval 1 hour
    group by partition_hour
),

llm as (
    select partition_hour, count(*) as llm_rows
    from raw_llm_logs
    group by partition_hour
),

requests as (
    select
        partition_hour,
        coalesce(sum(llm_rows), 0)::bigint as trusted_llm_rows,
        count(*) filter (where names_several_deployments) as requests_on_several_deployments
    from int_llm_requests
    group by partition_hour
)

select
    partition_hour,
    coalesce(gateway.gateway_rows, 0) as gateway_rows,
    coalesce(llm.llm_rows, 0) as llm_rows,
    coalesce(requests.trusted_llm_rows, 0)::bigint as trusted_llm_rows,
    coalesce(requests.requests_on_several_deployments, 0) as requests_on_several_deployments
from gateway
full join llm using (partition_hour)
full join requests using (partition_hour)
