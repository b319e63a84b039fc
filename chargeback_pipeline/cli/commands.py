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
@click.option("--days-per-run", default=1, show_default=True, help="Days materialized by one set of ranged runs.")
@click.option(
    "--publish-despite-blocked-reconciliation",
    "override_reason",
    metavar="REASON",
    help="Publish reports and chargebacks even where reconciliation blocks them; REASON is recorded beside them.",
)
def backfill_command(first_day: date, last_day: date | None, days_per_run: int, override_reason: str | None) -> None:
    """Materialize every hour of FIRST_DAY..LAST_DAY (inclusive, UTC), then the daily rollups, reports and
    chargebacks, then the monthly statements of the months those days fall in."""
    from chargeback_pipeline.settings import SettingsError, current_settings

    last_day = last_day or first_day
    try:
        settings = current_settings()
    except SettingsError as error:
        raise click.ClickException(str(error)) from None
    from chargeback_pipeline.cli.backfill import BackfillFailed, backfill, day_chunks
    from chargeback_pipeline.definitions import build_definitions

    instance = _instance()
    definitions = build_definitions(settings)
    chunks = len(list(day_chunks(first_day, last_day, days_per_run)))
    click.echo(
        f"backfilling {first_day}..{last_day} from the {settings.source} source "
        f"priced with {settings.pricing_file} in {chunks * 3} runs (DAGSTER_HOME={os.environ['DAGSTER_HOME']})"
    )
    started = time.monotonic()
    progress = {"n": 0}

    def report(chunk) -> None:
        progress["n"] += 1
        click.echo(
            f"  [{progress['n']}/{chunks}] {chunk.first_day}..{chunk.last_day} done "
            f"({time.monotonic() - started:.1f}s, runs "
            f"{' '.join(run.run_id[:8] for run in (chunk.hourly, chunk.daily, chunk.monthly))})"
        )

    try:
        backfill(
            first_day,
            last_day,
            definitions,
            instance,
            days_per_run=days_per_run,
            on_chunk=report,
            log_level="WARNING",
            publish_override_reason=override_reason,
        )
    except BackfillFailed as error:
        click.echo(f"error: {error}", err=True)
        sys.exit(1)
    echo_published_files(definitions.resources["reports"].store(), first_day, last_day)


def echo_published_files(store, first_day: date, last_day: date) -> None:
    """Where the backfilled days' files are: CSV paths, each with its .parquet beside it."""
    from chargeback_pipeline.storage.keys import chargeback_key, focus_key, product_usage_report_key, statement_key

    click.echo("published (CSV, with .parquet beside each):")
    months, day = [], first_day
    while day <= last_day:
        click.echo(f"  {day}")
        for label, key in (("usage", product_usage_report_key), ("chargeback", chargeback_key), ("FOCUS", focus_key)):
            click.echo(f"    {label + ':':<12} {store.url(key(day, 'csv'))}")
        if day.replace(day=1) not in months:
            months.append(day.replace(day=1))
        day += timedelta(days=1)
    for month in months:
        click.echo(f"  {month:%Y-%m} {'statement:':<12} {store.url(statement_key(month, 'csv'))}")


@main.command("verify-simulated")
@click.argument("day", type=Day())
def verify_simulated_command(day: date) -> None:
    """Compare DAY's published report with the simulator's ground truth (simulated source only)."""
    import io

    import pyarrow.parquet as pq

    from chargeback_pipeline.core.reports import split_report
    from chargeback_pipeline.definitions import build_resources
    from chargeback_pipeline.settings import current_settings
    from chargeback_pipeline.sources.base import TimeWindow
    from chargeback_pipeline.storage.keys import product_usage_report_key

    settings = current_settings()
    if settings.source != "simulated":
        raise click.ClickException("verify-simulated compares with the simulator: set CHARGEBACK_SOURCE=simulated")
    store = build_resources(settings)["reports"].store()
    key = product_usage_report_key(day, "parquet")
    if not store.exists(key):
        raise click.ClickException(f"no report at {store.url(key)}: run `chargeback backfill {day}` first")
    report = pq.read_table(io.BytesIO(store.read_bytes(key)))
    simulator = settings.source_resource.source()
    products, bypass = split_report(report)
    truth = simulator.expected_daily_usage(day)
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    bypass_truth = simulator.expected_bypass_tokens(TimeWindow(start, start + timedelta(days=1)))
    expected_bypass = {
        r["deployment_name"]: (r["prompt_tokens"], r["completion_tokens"]) for r in bypass_truth.to_pylist()
    }
    if not products.equals(truth) or bypass != expected_bypass:
        click.echo(
            f"MISMATCH: published {products.num_rows} product rows, ground truth {truth.num_rows}; "
            f"unattributed {bypass} vs simulated bypass {expected_bypass}",
            err=True,
        )
        sys.exit(1)
    tokens = sum(products["total_tokens"].to_pylist())
    click.echo(
        f"{day}: published report matches the simulator's ground truth exactly ({products.num_rows} product rows, "
        f"{tokens:,} billable tokens; unattributed lines equal the simulated APIM bypass on "
        f"{len(bypass)} deployments)"
    )


if __name__ == "__main__":
    main()
