-- The hour's raw rows, against which the trusted rows that attribution used are counted: the
-- difference is the rows that failed the checks. Counting reads row counts and one time column only.
-- Also the hour's requests whose SequenceNumber 0 records name several deployments, which gate the
-- record-by-record split of int_hour_logged_tokens.
select
    (
        select count(*) from raw_gateway_logs
        where TimeGenerated >= $window_start and TimeGenerated < $window_end
    ) as gateway_rows,
    (select count(*) from raw_llm_logs) as llm_rows,
    (select coalesce(sum(llm_rows), 0) from int_llm_requests)::bigint as trusted_llm_rows,
    (select count(*) from int_llm_requests where names_several_deployments) as requests_on_several_deployments
