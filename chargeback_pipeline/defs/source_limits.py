"""How runs treat the log source: retries with backoff, and the limits that protect the workspace's quotas.

Log Analytics allows 5 concurrent queries and 200 requests per 30 s per user; beyond that it answers 429.
Three layers keep a large backfill inside those limits, whoever launched it:
- `SOURCE_POOL`: the raw (source-querying) assets run in this Dagster concurrency pool, so across all runs
  at most the pool's limit of them query at once (`dagster instance concurrency set log_analytics 2`,
  or `concurrency.pools` in dagster.yaml). Applies to UI backfills, schedules and the CLI alike.
- `SOURCE_RUN_TAGS`: scheduled runs that query the source carry this tag; the run queue's
  `tag_concurrency_limits` (deploy/dagster.yaml) lets one such run in progress at a time.
- Step retries (defs/ingest/raw_logs.py): a `TransientSourceError` the Azure SDK's own retries did not absorb
  (throttling, a 5xx, a timeout, rows still being ingested) retries the step after 30 s, 60 s and 120 s
  (`LogSourceResource.step_retries` / `step_retry_delay_seconds`); a broken file or bad configuration
  fails at once. Re-pulling is idempotent: every hour's object is replaced whole, never appended.
"""

SOURCE_POOL = "log_analytics"
SOURCE_RUN_TAG_KEY = "chargeback/log-analytics"
SOURCE_RUN_TAGS = {SOURCE_RUN_TAG_KEY: "query"}
