"""The days a user names on the command line: YYYY-MM-DD, `today` or `yesterday` (UTC)."""

from datetime import UTC, date, datetime, timedelta

import click

DAY_WORDS = {"today": 0, "yesterday": -1}


def utc_today() -> date:
    return datetime.now(UTC).date()


class Day(click.ParamType):
    """A UTC day: YYYY-MM-DD, `today` or `yesterday`; never after today (there is nothing to bill yet)."""

    name = "YYYY-MM-DD"

    def convert(self, value, param, ctx) -> date:
        today = utc_today()
        if isinstance(value, date):
            day = value
        elif value in DAY_WORDS:
            day = today + timedelta(days=DAY_WORDS[value])
        else:
            try:
                day = date.fromisoformat(value)
            except ValueError:
                self.fail(f"{value!r} is not a day (YYYY-MM-DD, 'today' or 'yesterday')", param, ctx)
        if day > today:
            self.fail(f"{day} is after today ({today}, UTC): there is no usage to bill yet", param, ctx)
        return day
