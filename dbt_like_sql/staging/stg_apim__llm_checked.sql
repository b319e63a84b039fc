-- materialized: ephemeral
-- Every raw LLM row, with the reason it cannot be trusted (null when it can).
-- $known_deployments lists the configured deployments; when it is empty every deployment is accepted.
-- Ephemeral: inlined into the models that read it, so DuckDB reads only the columns they use.
select
    *,
    case
        when CorrelationId is null then 'CorrelationId is missing'
        -- An empty or blank id fails the pattern too; only then is it trimmed, to say it is missing.
        when not regexp_full_match(CorrelationId, '[A-Za-z0-9._:-]{1,128}') then
            case when trim(CorrelationId) = '' then 'CorrelationId is missing' else 'CorrelationId is malformed' end
        when SequenceNumber is null or SequenceNumber < 0 then 'SequenceNumber is missing or negative'
        when PromptTokens < 0 or CompletionTokens < 0 or TotalTokens < 0 then 'token count is negative'
        when SequenceNumber = 0 and (PromptTokens is null or CompletionTokens is null)
            then 'token counts are missing on SequenceNumber 0'
        when DeploymentName is null or trim(DeploymentName) = '' then 'DeploymentName is missing'
        when len($known_deployments::varchar[]) > 0
            and not list_contains($known_deployments::varchar[], DeploymentName)
            then 'deployment is not configured'
    end as quarantine_reason
from raw_llm_logs
