-- Each hour's counts for the attribution's metadata and checks, in one pass over its attributed requests
-- (the relation the hours' files are written from), one row per partition_hour that has requests (an
-- hour without any counts zero everywhere: core/attribution.py). A null CorrelationId, were there one,
-- counts as one more distinct id, so the uniqueness check sees it.
select
    partition_hour,
    count(*) as requests,
    count(distinct correlation_id) + (count(*) > count(correlation_id))::int as distinct_ids,
    count(*) filter (where is_billable) as billable,
    count(*) - count(*) filter (where is_success) as failed,
    count(*) - count(*) filter (where has_llm_record) as without_llm_record,
    coalesce(sum(total_tokens) filter (where is_billable), 0)::bigint as billable_tokens,
    (coalesce(sum(gateway_records), 0) - count(*))::bigint as duplicates,
    coalesce(sum(nonzero_later_chunks), 0)::bigint as chunk_tokens,
    count(*) filter (where llm_records > 1) as chunked
from attributed_requests
group by partition_hour
