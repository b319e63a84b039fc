-- Is each hour's gateway log complete? LLM requests logged in the core of the hour (away from its
-- edges by more than the join margin $core_margin, so their gateway row cannot sit in a neighbouring
-- hour) that have no gateway row at all point to gateway rows that were never delivered. One row per
-- partition_hour with core requests (an hour without any counts zero: core/attribution.py).
select
    l.partition_hour,
    count(*) as core_llm_requests,
    count(*) filter (where g.CorrelationId is null) as core_llm_requests_without_gateway_row
from int_llm_requests as l
left join (select distinct partition_hour, CorrelationId from stg_apim__gateway_checked) as g
    on l.partition_hour = g.partition_hour and l.correlation_id = g.CorrelationId
where l.llm_time >= l.partition_hour + $core_margin and l.llm_time < l.partition_hour + interval 1 hour - $core_margin
group by l.partition_hour
