"""Partitions: hours for landing and attribution, days for rollups and reports, months for statements (UTC)."""

from datetime import UTC, date, datetime, timedelta

import dagster as dg

from chargeback_pipeline.settings import current_settings

_start = current_settings().partitions_start

hourly_partitions = dg.HourlyPartitionsDefinition(start_date=f"{_start:%Y-%m-%d}-00:00", timezone="UTC")
daily_partitions = dg.DailyPartitionsDefinition(start_date=f"{_start:%Y-%m-%d}", timezone="UTC")
# The month in progress is a partition too (end_offset=1): its statement covers the days so far.
monthly_partitions = dg.MonthlyPartitionsDefinition(start_date=f"{_start:%Y-%m}-01", timezone="UTC", end_offset=1)


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
