-- Is the hour's gateway log complete? LLM requests logged in the core of the hour (away from its
-- edges by more than the join margin, so their gateway row cannot sit in a neighbouring hour) that
-- have no gateway row at all point to gateway rows that were never delivered.
select
    count(*) as core_llm_requests,
    count(*) filter (where g.CorrelationId is null) as core_llm_requests_without_gateway_row
from int_llm_requests as l
left join (select distinct CorrelationId from stg_apim__gateway_checked) as g on l.correlation_id = g.CorrelationId
where l.llm_time >= $core_start and l.llm_time < $core_end
