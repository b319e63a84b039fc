"""UTC calendar arithmetic shared by the engine: the hours of a day, the days of a month."""

from datetime import UTC, date, datetime, timedelta

HOUR = timedelta(hours=1)


def utc_day_start(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def day_hours(day: date) -> list[datetime]:
    """The 24 UTC hour starts of `day`."""
    start = utc_day_start(day)
    return [start + n * HOUR for n in range(24)]


def month_start(month: date | str) -> date:
    """The first day of the month of `month`: any date in it, or "YYYY-MM"."""
    if isinstance(month, str):
        year, number = month.split("-")[:2]
        return date(int(year), int(number), 1)
    return date(month.year, month.month, 1)


def month_text(month: date) -> str:
    """A month as every published file writes it, `2026-11`: the text of its folder `monthly/month=2026-11`
    (a `month` column is this text, never the month's first day)."""
    return f"{month:%Y-%m}"


def next_month_start(start: date) -> date:
    return date(start.year + start.month // 12, start.month % 12 + 1, 1)


def days_of_month(month: date) -> list[date]:
    start = month_start(month)
    return [start + timedelta(days=n) for n in range((next_month_start(start) - start).days)]
