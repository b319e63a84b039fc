-- materialized: ephemeral
-- Every raw gateway row of the window [$window_start, $window_end), with the reason it cannot be
-- trusted (null when it can). Untrusted rows are quarantined, never attributed and never dropped.
-- Ephemeral: inlined into the models that read it, so DuckDB reads only the columns they use.
select
    *,
    case
        when CorrelationId is null then 'CorrelationId is missing'
        -- An empty or blank id fails the pattern too; only then is it trimmed, to say it is missing.
        when not regexp_full_match(CorrelationId, '[A-Za-z0-9._:-]{1,128}') then
            case when trim(CorrelationId) = '' then 'CorrelationId is missing' else 'CorrelationId is malformed' end
        when IsRequestSuccess is null then 'IsRequestSuccess is missing'
    end as quarantine_reason
from raw_gateway_logs
where TimeGenerated >= $window_start and TimeGenerated < $window_end
