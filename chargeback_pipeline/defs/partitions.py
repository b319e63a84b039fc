"""Partitions: hours for landing and attribution, days for rollups and reports, months for statements (UTC).

They start at the configured first day (CHARGEBACK_PARTITIONS_START), so they are built from the
settings when the definitions are (`Calendar.starting`), never at import.
"""

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import dagster as dg

# Dagster's tags for a ranged run over partitions [start, end] (a single-run backfill).
RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"
HOUR_KEY_FORMAT = "%Y-%m-%d-%H:%M"  # Dagster's hourly partition keys: 2026-11-26-13:00


@dataclass(frozen=True)
class Calendar:
    hourly: dg.HourlyPartitionsDefinition
    daily: dg.DailyPartitionsDefinition
    monthly: dg.MonthlyPartitionsDefinition

    @classmethod
    def starting(cls, start: date) -> "Calendar":
        return cls(
            hourly=dg.HourlyPartitionsDefinition(start_date=f"{start:%Y-%m-%d}-00:00", timezone="UTC"),
            daily=dg.DailyPartitionsDefinition(start_date=f"{start:%Y-%m-%d}", timezone="UTC"),
            # The month in progress is a partition too (end_offset=1): its statement covers the days so far.
            monthly=dg.MonthlyPartitionsDefinition(start_date=f"{start:%Y-%m}-01", timezone="UTC", end_offset=1),
        )


def hour_partition_key(hour: datetime) -> str:
    return hour.astimezone(UTC).strftime(HOUR_KEY_FORMAT)


def day_partition_key(day: date) -> str:
    return f"{day:%Y-%m-%d}"


def month_partition_key(day: date) -> str:
    """The monthly partition holding `day`."""
    return f"{day:%Y-%m}-01"


def hours_in(window: dg.TimeWindow) -> list[datetime]:
    """The hour starts of a (possibly ranged) partition window."""
    hours, hour = [], window.start.astimezone(UTC)
    while hour < window.end:
        hours.append(hour)
        hour += timedelta(hours=1)
    return hours


def days_in(window: dg.TimeWindow) -> list[date]:
    start, end = window.start.astimezone(UTC).date(), window.end.astimezone(UTC).date()
    return [start + timedelta(days=n) for n in range((end - start).days)]


def months_in(window: dg.TimeWindow) -> list[date]:
    """The first days of the months of a (possibly ranged) monthly partition window."""
    return [day for day in days_in(window) if day.day == 1]


def partitioned_keys(assets, partitions_def: dg.PartitionsDefinition) -> list[dg.AssetKey]:
    """Keys of the assets with this partitioning: new assets join the schedules by being defined."""
    return [
        spec.key
        for a in assets
        if isinstance(a, dg.AssetsDefinition) and a.partitions_def == partitions_def
        for spec in a.specs
    ]
