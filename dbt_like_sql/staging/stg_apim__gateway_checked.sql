-- materialized: ephemeral
-- Every raw gateway row of its partition's hour [partition_hour, partition_hour + 1 hour), with the reason
-- it cannot be trusted (null when it can). `partition_hour`: the hourly partition whose raw file the row
-- was read from (a ranged run reads many hours' files at once; core/attribution.py adds the column). Untrusted rows are quarantined, never attributed and never dropped.
-- Ephemeral: inlined into the models that read it, so DuckDB reads only the columns they use.
--
-- The identifiers that reach the published reports (ProductId, ApimSubscriptionId, BackendId) must not
-- hold control characters (Unicode Cc: U+0000-U+001F, U+007F-U+009F) other than tab, line feed and
-- carriage return. APIM names cannot contain them, so such a row is corrupt, not a product: quarantined
-- with the column named (its LLM record's tokens stay in the reconciliation, as logged-not-billable).
-- A NUL would otherwise reach the CSV, where spreadsheets and many readers truncate or refuse the cell.
-- Tab, LF and CR are left to CSV quoting and formula escaping (storage/report_files.py).
select
    *,
    case
        when CorrelationId is null then 'CorrelationId is missing'
        -- An empty or blank id fails the pattern too; only then is it trimmed, to say it is missing.
        when not regexp_full_match(CorrelationId, '[A-Za-z0-9._:-]{1,128}') then
            case when trim(CorrelationId) = '' then 'CorrelationId is missing' else 'CorrelationId is malformed' end
        when IsRequestSuccess is null then 'IsRequestSuccess is missing'
        when regexp_matches(ProductId, '[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]') then 'control character in ProductId'
        when regexp_matches(ApimSubscriptionId, '[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]')
            then 'control character in ApimSubscriptionId'
        when regexp_matches(BackendId, '[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]') then 'control character in BackendId'
        -- CallerId (null unless caller keys are configured: sources/callers.py) is an identifier too, cut
        -- to 257 characters by the source: MAX_CALLER_CHARACTERS = 256 (the literal here and in the reason).
        when length(CallerId) > 256 then 'CallerId is longer than 256 characters'
        when regexp_matches(CallerId, '[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]') then 'control character in CallerId'
    end as quarantine_reason
from raw_gateway_logs
where TimeGenerated >= partition_hour and TimeGenerated < partition_hour + interval 1 hour
