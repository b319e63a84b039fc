-- Is each hour's gateway log complete? LLM requests logged in the core of the hour (away from its
-- edges by more than the join margin $core_margin, so their gateway row cannot sit in a neighbouring
-- hour) that have no gateway row at all point to gateway rows that were never delivered. One row per
-- partition_hour with core requests (an hour without any counts zero: core/attribution.py).
-- The gateway rows of the hour are its attributed requests (one per trusted id) and, only when the hour
-- has untrusted gateway rows, those rows too: the raw rows are not searched again for hours all clean.
with core_requests as (
    select partition_hour, correlation_id
    from int_llm_requests
    where llm_time >= partition_hour + $core_margin and llm_time < partition_hour + interval 1 hour - $core_margin
),

gateway_ids as (
    select partition_hour, correlation_id
    from attributed_requests
    union all
    select partition_hour, CorrelationId
    from stg_apim__gateway_checked
    where $gateway_has_untrusted_rows and quarantine_reason is not null
)

select
    partition_hour,
    count(*) as core_llm_requests,
    count(*) filter (where not has_gateway_row) as core_llm_requests_without_gateway_row
from (
    select
        c.partition_hour,
        exists (
            select 1 from gateway_ids as g
            where g.partition_hour = c.partition_hour and g.correlation_id = c.correlation_id
        ) as has_gateway_row
    from core_requests as c
)
group by partition_hour
