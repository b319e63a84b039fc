-- One row per trusted gateway request of the window.
-- The same record can be pulled twice (overlapping or repeated queries): keep one row per
-- CorrelationId, choosing deterministically so re-runs give identical output.
select
    TimeGenerated as request_time,
    CorrelationId as correlation_id,
    IsRequestSuccess as is_success,
    coalesce(nullif(ProductId, ''), 'unassigned') as product_id,
    coalesce(nullif(ApimSubscriptionId, ''), 'unassigned') as subscription_id,
    coalesce(nullif(BackendId, ''), 'unknown') as backend_id,
    ApiId as api_id,
    OperationId as operation_id,
    ResponseCode as response_code,
    count(*) over (partition by CorrelationId) as gateway_records
from stg_gateway_checked
where quarantine_reason is null
qualify row_number() over (
    partition by CorrelationId
    order by TimeGenerated, IsRequestSuccess desc, ResponseCode, BackendId, ProductId, ApimSubscriptionId
) = 1
