"""When the money assets are expected, as Dagster freshness policies (public 1.13 API: `dg.FreshnessPolicy`),
so the UI flags a chargeback, FOCUS export, budget status, anomaly list or statement that is late.

A day's hours are final once hour 23 has landed (00:20 the next day) and the daily step has run: the day's
money is expected by 02:00 UTC, like its usage report (`DAILY_REPORT_FRESHNESS`). The monthly statement is
re-stated after the days it covers, so it is expected an hour later.
"""

from datetime import timedelta

import dagster as dg

DAILY_MONEY_FRESHNESS = dg.FreshnessPolicy.cron(deadline_cron="0 2 * * *", lower_bound_delta=timedelta(hours=2))
STATEMENT_FRESHNESS = dg.FreshnessPolicy.cron(deadline_cron="0 3 * * *", lower_bound_delta=timedelta(hours=3))
