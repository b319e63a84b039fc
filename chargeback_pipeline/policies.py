"""How runs treat the log source: retries with backoff, and the limits that protect the workspace's quotas.

Log Analytics allows 5 concurrent queries and 200 requests per 30 s per user; beyond that it answers 429.
Three layers keep a large backfill inside those limits, whoever launched it:
- `SOURCE_POOL`: the raw (source-querying) assets run in this Dagster concurrency pool, so across all runs
  at most the pool's limit of them query at once (`dagster instance concurrency set log_analytics 2`,
  or `concurrency.pools` in dagster.yaml). Applies to UI backfills, schedules and the CLI alike.
- `SOURCE_RUN_TAGS`: scheduled runs that query the source carry this tag; the run queue's
  `tag_concurrency_limits` (deploy/dagster.yaml) lets one such run in progress at a time.
- `SOURCE_RETRY_POLICY`: a transient failure the Azure SDK's own retries did not absorb (throttling,
  a 5xx, a dropped connection) retries the step after 30 s, 60 s and 120 s (+-jitter). Re-pulling is
  idempotent: every hour's object is replaced whole, so a retry never double counts.
"""

import dagster as dg

SOURCE_POOL = "log_analytics"
SOURCE_RUN_TAG_KEY = "chargeback/log-analytics"
SOURCE_RUN_TAGS = {SOURCE_RUN_TAG_KEY: "query"}
SOURCE_RETRY_POLICY = dg.RetryPolicy(
    max_retries=3, delay=30, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.PLUS_MINUS
)
