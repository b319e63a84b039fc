"""Hours as the simulator counts them: integer epoch microseconds, so hour arithmetic is exact."""

from datetime import UTC, datetime, timedelta

HOUR = timedelta(hours=1)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
US_PER_SECOND = 1_000_000
US_PER_HOUR = 3600 * US_PER_SECOND


def epoch_us(moment: datetime) -> int:
    if moment.tzinfo is None:
        raise ValueError(f"naive datetime {moment}: use timezone-aware UTC datetimes")
    return (moment - EPOCH) // timedelta(microseconds=1)


def hours_overlapping(start_us: int, end_us: int) -> range:
    """Start (epoch us) of every hour overlapping [start_us, end_us)."""
    first = start_us // US_PER_HOUR * US_PER_HOUR
    return range(first, end_us, US_PER_HOUR)


def hours_starting_within(start_us: int, end_us: int) -> range:
    """Start (epoch us) of every hour with start_us <= hour start < end_us."""
    first = -(-start_us // US_PER_HOUR) * US_PER_HOUR
    return range(first, end_us, US_PER_HOUR)
