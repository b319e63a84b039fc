"""What budgets and anomalies read: the published daily chargebacks of the days they look at (the report
target's `chargeback.parquet`, seen through the run's staging: a day this run staged counts with it)."""

from collections.abc import Iterable
from datetime import date

from chargeback_pipeline.storage import keys
from chargeback_pipeline.storage.object_store import ObjectStore
from chargeback_pipeline.storage.parquet_bytes import read_parquet_bytes

COLUMNS = ["product_id", "subscription_id", "model_name", "total_cost", "prompt_tokens", "completion_tokens"]


class PublishedDays:
    """The chargeback lines (dicts of COLUMNS) of published days, each day read once per run; a day
    without a published chargeback is absent, never empty."""

    def __init__(self, reports: ObjectStore):
        self._reports = reports
        self._days: dict[date, list[dict] | None] = {}

    def lines(self, days: Iterable[date]) -> dict[date, list[dict]]:
        found = {}
        for day in days:
            if day not in self._days:
                key = keys.chargeback_key(day, "parquet")
                self._days[day] = (
                    read_parquet_bytes(self._reports.read_bytes(key)).select(COLUMNS).to_pylist()
                    if self._reports.exists(key)
                    else None
                )
            if self._days[day] is not None:
                found[day] = self._days[day]
        return found
