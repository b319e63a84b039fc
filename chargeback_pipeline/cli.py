"""The `chargeback` command."""

import os
import sys
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import click

DAY_WORDS = {"today": 0, "yesterday": -1}


class Day(click.ParamType):
    name = "YYYY-MM-DD"

    def convert(self, value, param, ctx) -> date:
        if isinstance(value, date):
            return value
        if value in DAY_WORDS:
            return datetime.now(UTC).date() + timedelta(days=DAY_WORDS[value])
        try:
            return date.fromisoformat(value)
        except ValueError:
            self.fail(f"{value!r} is not a day (YYYY-MM-DD, 'today' or 'yesterday')", param, ctx)


def _instance():
    import dagster as dg

    home = Path(os.environ.setdefault("DAGSTER_HOME", str(Path(".dagster_home").resolve())))
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    if not config.exists():
        config.write_text("telemetry:\n  enabled: false\n")
    return dg.DagsterInstance.get()


@click.group()
def main() -> None:
    """Token-based chargeback for shared Azure OpenAI deployments (see README.md)."""


@main.command("backfill")
@click.argument("first_day", type=Day())
@click.argument("last_day", type=Day(), required=False)
@click.option("--days-per-run", default=1, show_default=True, help="Days materialized by one pair of ranged runs.")
def backfill_command(first_day: date, last_day: date | None, days_per_run: int) -> None:
    """Materialize every hour of FIRST_DAY..LAST_DAY (inclusive, UTC), then the daily rollups and reports."""
    from chargeback_pipeline.assets.reports import product_usage_report_key
    from chargeback_pipeline.definitions import build_resources
    from chargeback_pipeline.runner import BackfillFailed, backfill, day_chunks
    from chargeback_pipeline.settings import SettingsError, current_settings

    last_day = last_day or first_day
    try:
        settings = current_settings()
    except SettingsError as error:
        raise click.ClickException(str(error)) from None
    instance = _instance()
    resources = build_resources(settings)
    chunks = len(list(day_chunks(first_day, last_day, days_per_run)))
    click.echo(
        f"backfilling {first_day}..{last_day} from the {settings.source.value} source "
        f"in {chunks * 2} runs (DAGSTER_HOME={os.environ['DAGSTER_HOME']})"
    )
    started = time.monotonic()
    progress = {"n": 0}

    def report(chunk) -> None:
        progress["n"] += 1
        click.echo(
            f"  [{progress['n']}/{chunks}] {chunk.first_day}..{chunk.last_day} done "
            f"({time.monotonic() - started:.1f}s, runs {chunk.hourly_run_id[:8]} {chunk.daily_run_id[:8]})"
        )

    try:
        backfill(first_day, last_day, resources, instance, days_per_run=days_per_run, on_chunk=report)
    except BackfillFailed as error:
        click.echo(f"error: {error}", err=True)
        sys.exit(1)
    store = resources["reports"].store()
    click.echo("reports:")
    day = first_day
    while day <= last_day:
        click.echo(f"  {store.url(product_usage_report_key(day, 'csv'))}")
        day += timedelta(days=1)


if __name__ == "__main__":
    main()
