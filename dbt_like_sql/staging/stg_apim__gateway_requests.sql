-- materialized: ephemeral
-- One row per trusted gateway request of each partition's hour, with how many trusted rows it had.
-- The same record can be pulled twice (overlapping or repeated queries): keep one row per
-- CorrelationId, choosing deterministically so re-runs give identical output: the first by
-- TimeGenerated, a success before a failure, then by ResponseCode, BackendId, ProductId,
-- ApimSubscriptionId, ApiId, OperationId and CallerId (nulls last).
-- Few ids have copies, so only their rows are compared; every other row is its request's only row.
with trusted as (
    select
        partition_hour, TimeGenerated, CorrelationId, IsRequestSuccess, ProductId, ApimSubscriptionId, BackendId, ApiId,
        OperationId, ResponseCode, CallerId
    from stg_apim__gateway_checked
    where quarantine_reason is null
),

copied as (
    select partition_hour, CorrelationId
    from trusted
    group by partition_hour, CorrelationId
    having count(*) > 1
),

first_of_copies as (
    select
        partition_hour,
        CorrelationId,
        count(*) as gateway_records,
        min(struct_pack(
            TimeGenerated, failed := not IsRequestSuccess, ResponseCode, BackendId, ProductId, ApimSubscriptionId,
            ApiId, OperationId, CallerId
        )) as kept
    from trusted semi join copied using (partition_hour, CorrelationId)
    group by partition_hour, CorrelationId
),

kept as (
    select *, 1 as gateway_records
    from trusted anti join copied using (partition_hour, CorrelationId)
    union all by name
    select
        partition_hour, kept.TimeGenerated, CorrelationId, not kept.failed as IsRequestSuccess, kept.ProductId,
        kept.ApimSubscriptionId, kept.BackendId, kept.ApiId, kept.OperationId, kept.ResponseCode, gateway_records,
        kept.CallerId
    from first_of_copies
)

select
    partition_hour,
    TimeGenerated as request_time,
    CorrelationId as correlation_id,
    IsRequestSuccess as is_success,
    coalesce(nullif(ProductId, ''), 'unassigned') as product_id,
    coalesce(nullif(ApimSubscriptionId, ''), 'unassigned') as subscription_id,
    coalesce(nullif(BackendId, ''), 'unknown') as backend_id,
    ApiId as api_id,
    OperationId as operation_id,
    ResponseCode as response_code,
    gateway_records,
    nullif(CallerId, '') as caller_id
from kept
