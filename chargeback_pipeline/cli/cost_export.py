"""`chargeback simulate-cost-export`: the simulated tenant's Cost Management export, written where the
pipeline reads the export (README "Actual cost"), so the demo shows estimate days turning actual."""

from datetime import date, timedelta

import click

from chargeback_pipeline.cli.configuration import configured_settings
from chargeback_pipeline.cli.days import Day, utc_today


def cost_export_location(settings):
    """The configured Cost Management export location (CHARGEBACK_COST_EXPORT_*), as a CostExportResource;
    its `is_configured()` is False when none is set."""
    from chargeback_pipeline.sources.cost_export.resource import CostExportResource

    secret = settings.cost_export_connection_string
    return CostExportResource(
        local_dir=str(settings.cost_export_dir) if settings.cost_export_dir else None,
        blob_account_url=settings.cost_export_blob_account_url,
        blob_connection_string=secret.get_secret_value() if secret else None,
        container=settings.cost_export_container,
        root_folder=settings.cost_export_root_folder,
    )


@click.command("simulate-cost-export")
@click.option(
    "--as-of",
    "as_of",
    type=Day(),
    default=None,
    help="The day the export runs (default: today, UTC; never later: no bill exists yet); it covers each month "
    "up to two days before.",
)
def simulate_cost_export_command(as_of: date | None) -> None:
    """Write the simulator's FocusCost export (one month-to-date run per month from CHARGEBACK_PARTITIONS_START
    to the run's day, Microsoft's layout and manifest) into the configured cost export location
    (CHARGEBACK_COST_EXPORT_DIR, _BLOB_ACCOUNT_URL or _CONNECTION_STRING). Simulated source only."""
    from chargeback_pipeline.core.billing.pricing import load_pricing
    from chargeback_pipeline.defs.cost_export.simulated_terms import simulated_terms
    from chargeback_pipeline.sources.simulated.cost_export import SimulatedAgreement, write_simulated_month

    settings = configured_settings()
    if settings.source != "simulated":
        raise click.ClickException("simulate-cost-export writes the simulator's bill: set CHARGEBACK_SOURCE=simulated")
    location = cost_export_location(settings)
    if not location.is_configured():
        raise click.ClickException(
            "no cost export location: set CHARGEBACK_COST_EXPORT_DIR (or _BLOB_ACCOUNT_URL / _CONNECTION_STRING)"
        )
    if settings.pricing_file is None:
        raise click.ClickException("the simulated bill is priced from the pricing file: set CHARGEBACK_PRICING_FILE")
    prices = load_pricing(settings.pricing_file)
    export = location.source()
    run_day = as_of or utc_today()
    if run_day < settings.partitions_start:
        raise click.BadParameter(
            f"{run_day} is before the partitions' first day {settings.partitions_start}: no month to write",
            param_hint="'--as-of'",
        )
    source = settings.source_resource.source()
    agreement = SimulatedAgreement()
    month = settings.partitions_start.replace(day=1)
    while month <= run_day:
        spec = write_simulated_month(
            export.store,
            export.root,
            source,
            lambda day: simulated_terms(prices, day),
            month,
            run_day,
            f"simulated-{month:%Y%m}-{run_day:%Y%m%d}",
            agreement,
        )
        covered = min(run_day - timedelta(days=agreement.lag_days), spec.period_end)
        what = f"covers {month}..{covered}" if covered >= month else "covers no day yet (the export lags)"
        click.echo(f"wrote {export.store.url(spec.manifest_key)}: {what}")
        month = (month + timedelta(days=32)).replace(day=1)
