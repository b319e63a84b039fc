-- Rows of each hour (`partition_hour`) that could not be trusted, with the reason: the source's rejects (values it could
-- not type) and the staging models' (values that make no sense). LLM rows are pulled with a margin
-- around the hour, so only those logged inside the hour are reported here: each row in one hour only.
-- $gateway_has_untrusted_rows / $llm_has_untrusted_rows: whether any raw row failed the checks (the
-- attribution counts its trusted rows); a clean hour's raw rows are not checked a second time.
with quarantined as (
    select partition_hour, 'ApiManagementGatewayLogs' as source_table, quarantine_reason as reason, TimeGenerated as placed_at,
        to_json(struct_pack(
            TimeGenerated, CorrelationId, IsRequestSuccess, ProductId, ApimSubscriptionId, UserId, ApiId,
            OperationId, BackendId, Region, Cache, ResponseCode, BackendResponseCode, TotalTime, BackendTime
        ))::varchar as record
    from stg_apim__gateway_checked
    where $gateway_has_untrusted_rows and quarantine_reason is not null
    union all
    select partition_hour, 'ApiManagementGatewayLlmLog', quarantine_reason, TimeGenerated,
        to_json(struct_pack(
            TimeGenerated, CorrelationId, RequestId, DeploymentName, ModelName, OperationName, ApiVersion, Region,
            PromptTokens, CompletionTokens, TotalTokens, SequenceNumber, IsStreamCompletion
        ))::varchar
    from stg_apim__llm_checked
    where $llm_has_untrusted_rows and quarantine_reason is not null
        and TimeGenerated >= partition_hour and TimeGenerated < partition_hour + interval 1 hour
    union all
    select partition_hour, source_table, reason, placed_at, record from raw_gateway_rejected
    where placed_at >= partition_hour and placed_at < partition_hour + interval 1 hour
    union all
    select partition_hour, source_table, reason, placed_at, record from raw_llm_rejected
    where placed_at >= partition_hour and placed_at < partition_hour + interval 1 hour
)
select partition_hour, source_table, reason, placed_at, record
from quarantined
order by partition_hour, source_table, reason, placed_at, record
