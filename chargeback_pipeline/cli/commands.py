"""The `chargeback` command.

A user's mistake (arguments, configuration, an unreachable or full DAGSTER_HOME, a refused Blob account)
ends with one line saying what is wrong, never a traceback: arguments are validated by click (usage error,
exit 2), everything else by `ChargebackGroup` (exit 1), with secrets redacted.
"""

import errno
import os
import shutil
import socket
import sqlite3
import sys
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import click

from chargeback_pipeline.cli.configuration import configured_settings
from chargeback_pipeline.cli.cost_export import simulate_cost_export_command
from chargeback_pipeline.cli.days import Day, utc_today
from chargeback_pipeline.cli.discover import check_pricing_command, discover_command
from chargeback_pipeline.cli.report import read_published, report_command

DEFAULT_DAGSTER_HOME = ".dagster_home"
# Written to $DAGSTER_HOME/dagster.yaml when there is none; the same settings as the repository's
# dagster.yaml (`make` copies that one), which test_cli.py holds them to.
DEFAULT_INSTANCE_YAML = """\
# Written by `chargeback` (the repository's dagster.yaml holds the same settings, with their reasons).
telemetry:
  enabled: false
python_logs:
  managed_python_loggers:
    - chargeback_pipeline
run_monitoring:
  enabled: true
  start_timeout_seconds: 180
  cancel_timeout_seconds: 180
  max_resume_run_attempts: 0
  poll_interval_seconds: 60
"""
INSTANCE_LOCK = ".chargeback-instance.lock"
INSTANCE_LOCK_TIMEOUT_SECONDS = 120
# At most this many unfinished runs are looked at when the command starts (a bound, not an expectation).
ABANDONED_RUNS_LIMIT = 500
DISK_FULL_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}


def _not_before_first_day(ctx: click.Context, param: click.Parameter, value: date | None) -> date | None:
    first = ctx.params.get("first_day")
    if value is not None and first is not None and value < first:
        raise click.BadParameter(f"{value} is before FIRST_DAY {first}", ctx=ctx, param_hint="'LAST_DAY'")
    return value


def _a_reason(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    # An override is recorded beside what it publishes: a blank reason records nothing, so it is refused
    # (not taken as no override, which held the day and then suggested the very flag given).
    if value is not None and not value.strip():
        raise click.BadParameter("the reason is recorded with what it publishes: give one (not blank)", ctx, param)
    return value


def _dagster_home() -> str:
    return os.environ.get("DAGSTER_HOME", DEFAULT_DAGSTER_HOME)


def _one_line(error: BaseException) -> str:
    from chargeback_pipeline.storage.object_store import redact

    text = " ".join(str(error).split()) or type(error).__name__
    return redact(text)


def _sqlite_message(error: BaseException) -> str:
    """The SQLite reason of a storage error ("database or disk is full"), without SQLAlchemy's SQL dump."""
    original = getattr(error, "orig", None) or error
    return _one_line(original).split(" [SQL:")[0]


def _free_space(path: str) -> str:
    try:
        return f"{shutil.disk_usage(path).free / 2**20:,.1f} MiB"
    except OSError:
        return "unknown space"


def user_error(error: Exception) -> str | None:
    """One line for an error the user can act on, or None for a bug (which keeps its traceback)."""
    import dagster as dg
    import filelock
    import sqlalchemy.exc
    from azure.core.exceptions import AzureError

    from chargeback_pipeline.settings import SettingsError
    from chargeback_pipeline.storage.object_store import ObjectStoreError

    home = _dagster_home()
    if isinstance(error, SettingsError | ObjectStoreError):
        return _one_line(error)
    if isinstance(error, filelock.Timeout):
        return (
            f"another chargeback process has held the Dagster instance lock {error.lock_file} for over "
            f"{INSTANCE_LOCK_TIMEOUT_SECONDS}s (creating the instance on a slow disk?): let it finish, then re-run"
        )
    if isinstance(error, sqlalchemy.exc.SQLAlchemyError | sqlite3.Error):
        reason = _sqlite_message(error)
        if "disk is full" in reason or "disk I/O error" in reason:
            return (
                f"the Dagster instance in DAGSTER_HOME={home} cannot be written ({reason}; {_free_space(home)} "
                "free on its disk): free space there or point DAGSTER_HOME elsewhere, then re-run (a backfill "
                "is idempotent)"
            )
        return f"the Dagster instance in DAGSTER_HOME={home} failed: {reason}"
    if isinstance(error, OSError) and error.errno in DISK_FULL_ERRNOS:
        where = f" writing {error.filename}" if error.filename else ""
        return (
            f"no space left{where} ({error.strerror}): free space on that disk (DAGSTER_HOME={home}, "
            "CHARGEBACK_LAKE_DIR, CHARGEBACK_OUTPUT_DIR), then re-run (a backfill is idempotent)"
        )
    if isinstance(error, OSError):
        return _one_line(error)
    if isinstance(error, AzureError):
        return f"Azure Blob Storage: {_one_line(error).split(' RequestId:')[0]}"
    if isinstance(error, dg.DagsterInvalidConfigError):
        return f"invalid Dagster configuration (DAGSTER_HOME={home}/dagster.yaml or a resource): {_one_line(error)}"
    return None


class ChargebackGroup(click.Group):
    """Turns user errors raised anywhere below into one line and exit 1 (`user_error`)."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except Exception as error:
            message = user_error(error)
            if message is None:
                raise
            raise click.ClickException(message) from None


def _instance():
    """The Dagster instance of DAGSTER_HOME (default ./.dagster_home), created safely.

    Several `chargeback` processes may start at once on a fresh DAGSTER_HOME: Dagster's SQLite storages
    create their schema and stamp its version on first use, and two doing that together fail
    (`UNIQUE constraint failed: alembic_version`). A file lock in DAGSTER_HOME serializes that first
    creation, and the look for abandoned runs (`fail_abandoned_runs`).
    """
    import dagster as dg
    from filelock import FileLock

    home = Path(_dagster_home()).resolve()
    os.environ["DAGSTER_HOME"] = str(home)  # Dagster wants it absolute
    home.mkdir(parents=True, exist_ok=True)
    with FileLock(home / INSTANCE_LOCK, timeout=INSTANCE_LOCK_TIMEOUT_SECONDS):
        config = home / "dagster.yaml"
        if not config.exists():
            temporary = home / f".dagster.yaml.{os.getpid()}.tmp"
            temporary.write_text(DEFAULT_INSTANCE_YAML)
            os.replace(temporary, config)
        instance = dg.DagsterInstance.get()
        # Every storage creates its schema now, under the lock, not in a run.
        instance.get_run_records(limit=1)
        instance.event_log_storage.get_asset_records()
        if instance.schedule_storage is not None:
            instance.schedule_storage.all_instigator_state()
        fail_abandoned_runs(instance)
    return instance


def fail_abandoned_runs(instance) -> list[str]:
    """Mark failed the unfinished runs of `chargeback` processes of this host that no longer exist.

    A run executes inside the `chargeback` process that started it (in-process runs, no run worker), so a
    process killed with -9 (or by the OOM killer, or a reboot) leaves its run STARTED forever: Dagster's
    run monitoring cannot see it (the default run launcher has no worker health check, and the daemon
    may not run at all). Each backfill run carries its process (`host:pid`); a run whose process is gone,
    or whose pid is now this very process (which has not started any run yet), is reported failed with an
    engine event saying why. Runs of other hosts are left alone (their process cannot be checked from here).
    """
    import dagster as dg

    from chargeback_pipeline.cli.backfill import LAUNCHED_BY, LAUNCHED_BY_TAG, PROCESS_TAG, run_partitions

    unfinished = [dg.DagsterRunStatus.NOT_STARTED, dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED]
    records = instance.get_run_records(
        filters=dg.RunsFilter(statuses=unfinished, tags={LAUNCHED_BY_TAG: LAUNCHED_BY}), limit=ABANDONED_RUNS_LIMIT
    )
    failed = []
    for record in records:
        run = record.dagster_run
        if "dagster/parent_run_id" in run.tags:  # a re-execution launched elsewhere (the UI) copied the tags
            continue
        host, _, pid = run.tags.get(PROCESS_TAG, "").rpartition(":")
        if host != socket.gethostname() or not pid.isdigit() or _process_exists(int(pid)):
            continue
        started = datetime.fromtimestamp(record.start_time or record.create_timestamp.timestamp(), UTC)
        message = (
            f"run {run.run_id[:8]} (started {started:%Y-%m-%d %H:%M:%S} UTC) marked failed: its chargeback "
            f"process {pid} on {host} is gone (killed?); partitions {run_partitions(run)} are left as that "
            "run left them: backfill their days again"
        )
        instance.report_run_failed(run, message)
        click.echo(message, err=True)
        failed.append(run.run_id)
    return failed


def _process_exists(pid: int) -> bool:
    if pid == os.getpid():
        return False  # this process has started no run yet: a run with its pid is a previous process's
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    return True


@click.group(cls=ChargebackGroup)
def main() -> None:
    """Token-based chargeback for shared Azure OpenAI deployments (see README.md)."""


@main.command("backfill")
@click.argument("first_day", type=Day())
@click.argument("last_day", type=Day(), required=False, callback=_not_before_first_day)
@click.option(
    "--days-per-run",
    default=1,
    show_default=True,
    type=click.IntRange(min=1, max=366),
    help="Days materialized by one set of ranged runs.",
)
@click.option(
    "--publish-despite-blocked-reconciliation",
    "override_reason",
    metavar="REASON",
    callback=_a_reason,
    help="Publish reports and chargebacks even where reconciliation blocks them; REASON is recorded beside them.",
)
@click.option(
    "--publish-despite-shrink",
    "shrink_reason",
    metavar="REASON",
    callback=_a_reason,
    help="Publish a day even where it would replace a published one with fewer rows or a smaller total; "
    "REASON is recorded beside the files.",
)
def backfill_command(
    first_day: date,
    last_day: date | None,
    days_per_run: int,
    override_reason: str | None,
    shrink_reason: str | None,
) -> None:
    """Materialize every hour of FIRST_DAY..LAST_DAY (inclusive, UTC), then the daily rollups, reports and
    chargebacks, then the monthly statements of the months those days fall in.

    Failed checks are summarized at the end; a failed check of severity ERROR makes the command exit 1
    (after the whole range ran), a WARN one is only printed, and so is a blocked reconciliation published
    with --publish-despite-blocked-reconciliation."""
    last_day = last_day or first_day
    today = utc_today()
    if last_day >= today:  # only complete hours are billed: today's are still happening (README "Failure modes")
        raise click.BadParameter(
            f"{last_day} is today (UTC) and not over: only complete days are backfilled, or hours that have not "
            f"happened yet would be billed. Backfill through yesterday ({today - timedelta(days=1)}); the "
            "hourly_attribution schedule lands today's hours as they end",
            param_hint="'LAST_DAY'" if last_day != first_day else "'FIRST_DAY'",
        )
    settings = configured_settings()
    if first_day < settings.partitions_start:
        raise click.BadParameter(
            f"{first_day} is before the partitions' first day {settings.partitions_start} "
            "(CHARGEBACK_PARTITIONS_START)",
            param_hint="'FIRST_DAY'",
        )
    from chargeback_pipeline.cli import check_summary
    from chargeback_pipeline.cli.backfill import BackfillFailed, backfill, checks_with_partitions, day_chunks
    from chargeback_pipeline.definitions import build_definitions

    instance = _instance()
    definitions = build_definitions(settings)
    chunks = len(list(day_chunks(first_day, last_day, days_per_run)))
    click.echo(
        f"backfilling {first_day}..{last_day} from the {settings.source} source "
        f"priced with {settings.pricing_file or 'no pricing file (usage only)'} in {chunks * 3} runs "
        f"(DAGSTER_HOME={os.environ['DAGSTER_HOME']})"
    )
    started = time.monotonic()
    done, checks, hourly_runs = [], [], []

    def report(chunk) -> None:
        done.append(chunk)
        hourly_runs.append(chunk.hourly)
        checks.extend(chunk.checks_with_partitions())
        click.echo(
            f"  [{len(done)}/{chunks}] {chunk.first_day}..{chunk.last_day} done "
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
            publish_shrink_reason=shrink_reason,
        )
    except BackfillFailed as error:
        from chargeback_pipeline.storage.object_store import redact

        echo_rejections([*hourly_runs, error.result])
        echo_check_summaries(checks + checks_with_partitions(error.result), override_reason)
        click.echo(f"error: {redact(str(error))}", err=True)
        sys.exit(1)
    echo_published_files(definitions.resources["reports"].process_config_and_initialize().store(), first_day, last_day)
    echo_rejections(hourly_runs)
    echo_check_summaries(checks, override_reason)
    errors = check_summary.command_failures(checks, override_reason)
    if errors:
        click.echo(f"error: {len(errors)} check(s) of severity ERROR failed: {', '.join(errors)}", err=True)
        sys.exit(1)


def echo_rejections(runs) -> None:
    from chargeback_pipeline.cli.rejections import rejected_summary

    lines = rejected_summary(runs)
    if lines:
        click.echo("rejected source rows (not counted; each hour's rows with their reason in its rejected.parquet):")
        click.echo("\n".join(lines))


def echo_check_summaries(checks, override_reason: str | None = None) -> None:
    from chargeback_pipeline.cli.check_summary import summaries

    paragraphs = summaries(checks, override_reason)
    if paragraphs:
        click.echo("failed checks:", err=True)
    for paragraph in paragraphs:
        click.echo(f"  {paragraph}", err=True)
    from chargeback_pipeline.cli.check_summary import alerts

    # Budget crossings and cost anomalies: business alerts, printed, never a reason to exit 1.
    paragraphs = alerts(checks)
    if paragraphs:
        click.echo("alerts (budgets and cost anomalies; they do not change the exit code):")
    for paragraph in paragraphs:
        click.echo(f"  {paragraph}")


def echo_published_files(store, first_day: date, last_day: date) -> None:
    """Where the backfilled days' files are: CSV paths, each with its .parquet beside it."""
    from chargeback_pipeline.storage import keys

    daily = (
        ("usage", keys.product_usage_report_key),
        ("chargeback", keys.chargeback_key),
        ("FOCUS", keys.focus_key),
        ("budgets", keys.budget_status_key),
        ("anomalies", keys.cost_anomalies_key),
    )
    click.echo("published (CSV, with .parquet beside each):")
    months, day = [], first_day
    while day <= last_day:
        click.echo(f"  {day}")
        for label, key in daily:
            click.echo(f"    {label + ':':<12} {store.url(key(day, 'csv'))}")
        if day.replace(day=1) not in months:
            months.append(day.replace(day=1))
        day += timedelta(days=1)
    for month in months:
        click.echo(f"  {month:%Y-%m} {'statement:':<12} {store.url(keys.statement_key(month, 'csv'))}")
        click.echo(f"          {'to read:':<12} {store.url(keys.statement_key(month, 'html'))}")
        if store.exists(keys.ptu_rightsizing_key(month, "csv")):  # absent when no PTU deployment was measured
            click.echo(f"          {'PTU sizing:':<12} {store.url(keys.ptu_rightsizing_key(month, 'csv'))}")
            click.echo(f"          {'PTU what-if:':<12} {store.url(keys.ptu_what_if_key(month, 'png'))}")


@main.command("verify-simulated")
@click.argument("day", type=Day())
def verify_simulated_command(day: date) -> None:
    """Compare DAY's published report with the simulator's ground truth (simulated source only)."""

    from chargeback_pipeline.core.reports import split_report
    from chargeback_pipeline.definitions import build_resources
    from chargeback_pipeline.sources.base import TimeWindow
    from chargeback_pipeline.storage.keys import product_usage_report_key

    settings = configured_settings()
    if settings.source != "simulated":
        raise click.ClickException("verify-simulated compares with the simulator: set CHARGEBACK_SOURCE=simulated")
    store = build_resources(settings)["reports"].process_config_and_initialize().store()
    key = product_usage_report_key(day, "parquet")
    if not store.exists(key):
        raise click.ClickException(f"no report at {store.url(key)}: run `chargeback backfill {day}` first")
    report = read_published(store, key, str(day))
    simulator = settings.source_resource.source()
    products, unattributed = split_report(report)
    truth = simulator.expected_daily_usage(day)
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    unattributed_truth = simulator.expected_unattributed_tokens(TimeWindow(start, start + timedelta(days=1)))
    expected_unattributed = {
        (r["backend_id"], r["deployment_name"]): (r["prompt_tokens"], r["completion_tokens"])
        for r in unattributed_truth.to_pylist()
        if r["prompt_tokens"] or r["completion_tokens"]
    }
    if not products.equals(truth) or unattributed != expected_unattributed:
        click.echo(
            f"MISMATCH: published {products.num_rows} product rows, ground truth {truth.num_rows}; "
            f"unattributed {unattributed} vs simulated {expected_unattributed}",
            err=True,
        )
        sys.exit(1)
    tokens = sum(products["total_tokens"].to_pylist())
    click.echo(
        f"{day}: published report matches the simulator's ground truth exactly ({products.num_rows} product rows, "
        f"{tokens:,} billable tokens; unattributed lines equal the simulated APIM bypass and unplaced records on "
        f"{len(unattributed)} resource deployments)"
    )
    verify_simulated_money(settings, store, simulator, day)


def verify_simulated_money(settings, store, simulator, day: date) -> None:
    """The published chargeback's cost per product against the simulator's money oracle (its own requests
    and the pricing file, exact fractions, README: Money); exit 1 naming every product off."""
    from chargeback_pipeline.core.billing.pricing import load_pricing
    from chargeback_pipeline.sources.simulated.money_oracle import compare_with_published
    from chargeback_pipeline.storage.keys import chargeback_key

    if not settings.pricing_file:
        click.echo(f"{day}: no pricing file, so no money to verify")
        return
    key = chargeback_key(day, "parquet")
    if not store.exists(key):
        raise click.ClickException(f"no chargeback at {store.url(key)}: run `chargeback backfill {day}` first")
    prices = load_pricing(settings.pricing_file)
    minor_unit = prices.currency_minor_unit  # the currency's digits only
    lines = read_published(store, key, str(day)).to_pylist()
    published: dict = {"effective": {}, "billed": {}}
    for line in lines:
        for view, column in (("effective", "total_cost"), ("billed", "billed_cost")):
            amount = line.get(column, line["total_cost"])
            published[view][line["product_id"]] = published[view].get(line["product_id"], 0) + amount
    if any(line.get("cost_basis") == "actual" for line in lines):
        expected = simulated_actual_costs(settings, prices, simulator, day)
        problems = [
            f"{view} {problem}"
            for view in ("effective", "billed")
            for problem in compare_with_published(expected[view], published[view], minor_unit)
        ]
        what = "actual cost (EffectiveCost and BilledCost) per product matches the simulator's own cost export"
    else:
        expected = {"effective": simulator.expected_product_costs(day, settings.pricing_file, minor_unit)}
        problems = compare_with_published(expected["effective"], published["effective"], minor_unit)
        what = "cost per product matches the simulator's money oracle"  # an estimate: no export covers the day
    if problems:
        click.echo(f"MISMATCH in money on {day}: " + "; ".join(problems), err=True)
        sys.exit(1)
    click.echo(
        f"{day}: the chargeback's {what} ({len(expected['effective'])} products, each within its rounding tolerance)"
    )


def simulated_actual_costs(settings, prices, simulator, day: date) -> dict:
    """Per view and product, what the simulator's own export of the day (regenerated: `chargeback
    simulate-cost-export` writes the same rows) comes to when shared out by its own requests."""
    from chargeback_pipeline.defs.cost_export.simulated_terms import simulated_terms
    from chargeback_pipeline.sources.simulated.actual_money_oracle import expected_actual_costs
    from chargeback_pipeline.sources.simulated.cost_export import SimulatedAgreement, day_rows, metered_tokens

    rows = day_rows(simulator, simulated_terms(prices, day), SimulatedAgreement(), day)
    backends = {b.resource_id.lower(): name for name, b in prices.backends.items() if b.resource_id}
    models = {
        b.resource_id.lower(): {d.model for d in b.deployments.values()}
        for b in prices.backends.values()
        if b.resource_id
    }
    usage, metered = simulator.day_usage(day, settings.pricing_file), metered_tokens(simulator, day)
    return expected_actual_costs(rows, backends, models, metered, usage, prices.currency_minor_unit)


main.add_command(discover_command)
main.add_command(check_pricing_command)
main.add_command(report_command)
main.add_command(simulate_cost_export_command)

if __name__ == "__main__":
    main()
