"""The ``leadflow`` command: run services, apply configuration, inspect leads.

This module holds the ``main`` group and what every command group shares (the settings,
database sessions for one command); each command group lives in its own module beside it
and is registered at the end of this one.
"""

from __future__ import annotations

import click

from shared.config import Settings, load_settings
from shared.db.engine import SessionFactory
from shared.errors import SettingsError


def _settings() -> Settings:
    try:
        return load_settings()
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from None


def _sessions(settings: Settings) -> SessionFactory:
    """Sessions for one command; the engine's connections are closed when it ends."""
    from shared.db.engine import make_engine, make_session_factory

    engine = make_engine(settings.database_url)
    context = click.get_current_context(silent=True)
    if context is not None:
        context.call_on_close(engine.dispose)
    return make_session_factory(engine)


@click.group()
def main() -> None:
    """leadflow: self-hosted lead distribution."""
    from shared.lifecycle import die_with_parent

    die_with_parent()  # a copy started by `leadflow up` ends with it


def _register() -> None:
    """Add every command group's commands to ``main`` (the modules import the helpers
    above, so they are imported once those exist)."""
    from services.cli import (
        batches,
        config,
        db,
        dead,
        feedback,
        gates,
        leads,
        money,
        pings,
        services,
        up,
        users,
    )

    for command in (
        *services.COMMANDS,
        feedback.feedback,
        up.up,
        db.db,
        config.config,
        leads.leads,
        batches.batches,
        dead.dead,
        gates.caps,
        gates.recipients,
        money.report,
        money.returns,
        pings.pings,
        users.users,
    ):
        main.add_command(command)


_register()
