"""Shared by parent and children; imports nothing heavy (the floors must not pay for Dagster's import)."""

from datetime import UTC, date, datetime, timedelta
from pathlib import Path


def paths(config: dict) -> dict[str, Path]:
    work = Path(config["workdir"])
    return {"lake": work / "lake", "reports": work / "reports", "dagster_home": work / "dagster_home"}


def day_window(day: date) -> tuple[datetime, datetime]:
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    return start, start + timedelta(days=1)
