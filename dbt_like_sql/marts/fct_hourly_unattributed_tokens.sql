-- Per backend (resource), deployment and hour: tokens the deployment metered that APIM did not log
-- (metric - logged), the second input of the chargeback allocation (UNATTRIBUTED_SCHEMA with its
-- backend_id): they are charged to `unattributed` at that resource's terms.
-- A gap the other way (more logged than metered) cannot be charged to anyone, so it is clipped at zero
-- here and kept in the clipped_* columns, which the chargeback asset reports in its metadata (the
-- reconciliation check judges both directions). Hours without metrics have no gap to charge.
select
    usage_hour,
    deployment_name,
    backend_id,
    greatest(metric_prompt_tokens - logged_prompt_tokens, 0)::bigint as prompt_tokens,
    greatest(metric_completion_tokens - logged_completion_tokens, 0)::bigint as completion_tokens,
    greatest(logged_prompt_tokens - metric_prompt_tokens, 0)::bigint as clipped_prompt_tokens,
    greatest(logged_completion_tokens - metric_completion_tokens, 0)::bigint as clipped_completion_tokens
from deployment_reconciliation
where has_metrics
order by usage_hour, deployment_name, backend_id
