"""`chargeback discover` and `chargeback check-pricing`: onboarding a tenant from what its source shows."""

from datetime import UTC, datetime, timedelta
from pathlib import Path

import click
from tabulate import tabulate

from chargeback_pipeline.cli.configuration import configured_settings

HOUR = timedelta(hours=1)


def _table(rows: list[dict]) -> str:
    if not rows:
        return "  (none)"
    return tabulate(rows, headers="keys", tablefmt="simple", intfmt=",", floatfmt=",.2f")


@click.command("discover")
@click.option("--days", type=click.IntRange(1, 31), default=7, show_default=True, help="Days before now to read.")
@click.option(
    "--write",
    "write_to",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    help="Write a pricing-file skeleton with every backend, resource id, deployment and model to FILE.",
)
@click.option("--currency", default="USD", show_default=True, help="ISO 4217 currency of the skeleton.")
def discover_command(days: int, write_to: Path | None, currency: str) -> None:
    """Read the configured source (CHARGEBACK_SOURCE) over the last DAYS whole UTC days and print the APIM
    products, subscriptions, backends, deployments with their models, the resources hosting them (from the
    metrics), and the share of traffic that never reached the LLM log. Nothing is stored."""
    from chargeback_pipeline.core.discovery import Discovery
    from chargeback_pipeline.sources.base import PermanentSourceError, SourceInputError, TimeWindow

    settings = configured_settings()
    resource = settings.source_resource
    source, margin = resource.source(), timedelta(minutes=resource.llm_join_overlap_minutes)
    end = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    end = end.replace(hour=0)  # whole days: the last one is yesterday
    start = end - timedelta(days=days)
    click.echo(f"reading {start:%Y-%m-%d}..{end - HOUR:%Y-%m-%d} from the {settings.source} source ({days * 24} hours)")
    found, hour, missing = Discovery(), start, []
    while hour < end:
        window = TimeWindow(hour, hour + HOUR)
        try:
            found.add_hour(
                hour,
                source.gateway_logs(window).rows,
                source.llm_logs(TimeWindow(hour - margin, hour + HOUR + margin)).rows,
                source.deployment_metrics(window).rows,
            )
        except SourceInputError as error:  # an hour a folder export lacks: say so, read the others
            missing.append(f"{hour:%Y-%m-%d %H:00}: {error}")
        except PermanentSourceError as error:  # a refused query (role, workspace): no hour would do better
            raise click.ClickException(str(error)) from None
        hour += HOUR
    if missing:
        click.echo(f"{len(missing)} of {days * 24} hours could not be read (first: {missing[0]})", err=True)
    if found.hours == 0:
        raise click.ClickException("no hour of the window could be read: nothing to discover")
    click.echo("\nAPIM products and subscriptions\n" + _table(found.products()))
    click.echo("\nBackends and deployments (from the logs)\n" + _table(found.backends()))
    click.echo("\nResources and deployments (from the metrics)\n" + _table(found.resources()))
    share = found.llm_log_share()
    click.echo(
        f"\n{share['gateway_requests']:,} gateway requests, {share['never_reached_llm_log_percent']}% never reached "
        f"the LLM log (non-LLM calls, failures before the model); {share['llm_requests_without_gateway_row']:,} LLM "
        "requests had no gateway row in their hour"
    )
    click.echo("\n" + trace_keys_text(source, TimeWindow(start, end)))
    if write_to:
        meters = export_meters(settings, found, start, end)
        write_to.write_text(found.pricing_skeleton(currency, meters), encoding="utf-8")
        click.echo(
            f"\nwrote a pricing-file skeleton to {write_to}"
            + (f" with the {len(meters)} meter(s) the cost export bills them on" if meters else "")
            + f": fill in every FILL_IN, then `chargeback check-pricing {write_to}`"
        )


@click.command("check-pricing")
@click.argument("pricing_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def check_pricing_command(pricing_file: Path) -> None:
    """Validate PRICING_FILE: every problem is named by its setting's path."""
    from chargeback_pipeline.core.billing.pricing import PricingError, load_pricing

    try:
        pricing = load_pricing(pricing_file)
    except PricingError as error:
        raise click.ClickException(str(error)) from None
    deployments = sum(len(backend.deployments) for backend in pricing.backends.values())
    click.echo(
        f"{pricing_file}: valid ({len(pricing.backends)} backends, {deployments} deployments, {pricing.currency})"
    )


def export_meters(settings, found, start: datetime, end: datetime) -> dict[str, dict]:
    """With a Cost Management export configured (CHARGEBACK_COST_EXPORT_*), the pricing file's `meters`
    mapping of every meter its newest complete runs of the window's months bill the discovered resources on
    (README "Actual cost"); none configured: nothing."""
    from chargeback_pipeline.cli.cost_export import cost_export_location
    from chargeback_pipeline.core.billing.meters import meter_mapping
    from chargeback_pipeline.core.discovery import FILL_IN
    from chargeback_pipeline.sources.cost_export.manifest import CostExportError

    location = cost_export_location(settings)
    if not location.is_configured():
        return {}
    models = {resource.lower(): names for resource, names in found.resource_models().items()}
    months, day = set(), start.date()
    while day < end.date():
        months.add(day.replace(day=1))
        day += timedelta(days=1)
    try:
        charges = location.source().month_charges(set(models), months)
    except CostExportError as error:
        raise click.ClickException(f"cost export: {error}") from None
    if not charges:
        click.echo("the cost export has no complete run of these months: no meters written", err=True)
        return {}
    meters: dict[str, set[str]] = {}
    for month in charges.values():
        for row in month.rows.select(["resource_id", "meter_name"]).to_pylist():
            if (row["resource_id"] or "").lower() in models and row["meter_name"]:
                meters.setdefault(row["resource_id"].lower(), set()).add(row["meter_name"])
    mapping = meter_mapping(meters, models, FILL_IN)
    click.echo("\nCost export meters of these resources\n" + _table([{"meter": m, **v} for m, v in mapping.items()]))
    return mapping


def trace_keys_text(source, window) -> str:
    """The trace-record metadata names of the window with how many records carry each: the candidates for
    CHARGEBACK_CALLER_TRACE_KEYS (README "Callers"). Names only: no value is read."""
    from chargeback_pipeline.sources.base import PermanentSourceError, TransientSourceError

    title = "Trace-record metadata keys (candidates for CHARGEBACK_CALLER_TRACE_KEYS; names only, no value read)"
    try:
        keys = source.trace_record_keys(window)
    except (PermanentSourceError, TransientSourceError) as error:
        return f"{title}\n  (not readable: {error})"
    rows = [{"key": key, "records": records} for key, records in sorted(keys.items(), key=lambda kv: (-kv[1], kv[0]))]
    return f"{title}\n" + _table(rows)
