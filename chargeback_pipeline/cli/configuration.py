"""The settings a command runs with (the environment: README "Configuration"), or one line saying what is
wrong with them (click's error, exit 1), never a traceback."""

import click


def configured_settings():
    from chargeback_pipeline.settings import SettingsError, current_settings

    try:
        return current_settings()
    except SettingsError as error:
        raise click.ClickException(str(error)) from None
