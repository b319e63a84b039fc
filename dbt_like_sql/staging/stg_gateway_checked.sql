-- Every raw gateway row of the window [$window_start, $window_end), with the reason it cannot be
-- trusted (null when it can). Untrusted rows are quarantined, never attributed and never dropped.
select
    *,
    case
        when CorrelationId is null or trim(CorrelationId) = '' then 'CorrelationId is missing'
        when not regexp_full_match(CorrelationId, '[A-Za-z0-9._:-]{1,128}') then 'CorrelationId is malformed'
        when IsRequestSuccess is null then 'IsRequestSuccess is missing'
    end as quarantine_reason
from raw_gateway_logs
where TimeGenerated >= $window_start and TimeGenerated < $window_end
