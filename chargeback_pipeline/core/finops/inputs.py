"""What budgets and anomalies read: the published daily chargebacks of the days they look at."""

from collections.abc import Iterable
from datetime import date

from chargeback_pipeline.core.billing.schemas import DAILY_CHARGEBACK_SCHEMA
from chargeback_pipeline.storage import keys
from chargeback_pipeline.storage.lake import Lake

COLUMNS = ["product_id", "subscription_id", "model_name", "total_cost", "prompt_tokens", "completion_tokens"]


class PublishedDays:
    """The chargeback lines (dicts of COLUMNS) of published days, each day read once per run; a day
    without a published chargeback is absent, never empty."""

    def __init__(self, lake: Lake):
        self._lake = lake
        self._days: dict[date, list[dict] | None] = {}

    def lines(self, days: Iterable[date]) -> dict[date, list[dict]]:
        found = {}
        for day in days:
            if day not in self._days:
                key = keys.day_key(keys.DAILY_CHARGEBACK, day)
                exists = self._lake.store.exists(key)
                self._days[day] = (
                    self._lake.read(key, DAILY_CHARGEBACK_SCHEMA).select(COLUMNS).to_pylist() if exists else None
                )
            if self._days[day] is not None:
                found[day] = self._days[day]
        return found
