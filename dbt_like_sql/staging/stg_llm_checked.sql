-- Every raw LLM row, with the reason it cannot be trusted (null when it can).
-- known_deployments lists the configured deployments; when it is empty every deployment is accepted.
select
    *,
    case
        when CorrelationId is null or trim(CorrelationId) = '' then 'CorrelationId is missing'
        when not regexp_full_match(CorrelationId, '[A-Za-z0-9._:-]{1,128}') then 'CorrelationId is malformed'
        when SequenceNumber is null or SequenceNumber < 0 then 'SequenceNumber is missing or negative'
        when PromptTokens < 0 or CompletionTokens < 0 or TotalTokens < 0 then 'token count is negative'
        when SequenceNumber = 0 and (PromptTokens is null or CompletionTokens is null)
            then 'token counts are missing on SequenceNumber 0'
        when DeploymentName is null or trim(DeploymentName) = '' then 'DeploymentName is missing'
        when (select count(*) from known_deployments) > 0
            and DeploymentName not in (select deployment_name from known_deployments)
            then 'deployment is not configured'
    end as quarantine_reason
from raw_llm_logs
