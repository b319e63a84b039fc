-- materialized: ephemeral
-- Every raw LLM row, with the reason it cannot be trusted (null when it can).
-- $known_deployments lists the configured deployments; when it is empty every deployment is accepted.
-- Ephemeral: inlined into the models that read it, so DuckDB reads only the columns they use.
--
-- MAX_TOKENS_PER_RECORD = 10,000,000 (the literal below and in the reason: keep the three equal).
-- One record is one call to a model: its prompt fits the model's context window and its completion the
-- model's output limit. The largest window served behind APIM today is about 1,050,000 tokens (gpt-4.1:
-- 1,047,576 in, 32,768 out), so a count above 10,000,000 is not usage but a corrupt or sentinel value
-- (2^63-1, 2^32-1...). It is quarantined with its own reason instead of being summed: one such row
-- overflowed the day's 64-bit sums and failed the whole day. With every record under the bound, a
-- 64-bit sum cannot overflow below 900 billion records.
--
-- Identifiers that reach the published reports (DeploymentName, ModelName) must not hold control
-- characters (Unicode Cc: U+0000-U+001F, U+007F-U+009F) other than tab, line feed and carriage return:
-- Azure names cannot contain them, so such a value is a corrupt row. Tab, LF and CR are left to CSV
-- quoting and formula escaping (storage/report_files.py), as product names with line breaks round-trip.
select
    *,
    case
        when CorrelationId is null then 'CorrelationId is missing'
        -- An empty or blank id fails the pattern too; only then is it trimmed, to say it is missing.
        when not regexp_full_match(CorrelationId, '[A-Za-z0-9._:-]{1,128}') then
            case when trim(CorrelationId) = '' then 'CorrelationId is missing' else 'CorrelationId is malformed' end
        when SequenceNumber is null or SequenceNumber < 0 then 'SequenceNumber is missing or negative'
        when PromptTokens < 0 or CompletionTokens < 0 or TotalTokens < 0 then 'token count is negative'
        when PromptTokens > 10000000 or CompletionTokens > 10000000 or TotalTokens > 10000000
            then 'token count is above 10,000,000 per record'
        when SequenceNumber = 0 and (PromptTokens is null or CompletionTokens is null)
            then 'token counts are missing on SequenceNumber 0'
        when DeploymentName is null or trim(DeploymentName) = '' then 'DeploymentName is missing'
        when regexp_matches(DeploymentName, '[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]')
            then 'control character in DeploymentName'
        when regexp_matches(ModelName, '[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]') then 'control character in ModelName'
        when len($known_deployments::varchar[]) > 0
            and not list_contains($known_deployments::varchar[], DeploymentName)
            then 'deployment is not configured'
    end as quarantine_reason
from raw_llm_logs
