"""The ``leadflow`` command: run services, apply configuration, inspect leads.

This module holds the ``main`` group and what every command group shares (the settings,
database sessions for one command, errors shown as the command's message, option
groups); each command group lives in its own module beside it, which adds it to ``main``
when it is imported at the end of this one.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, TypeVar

import click

from shared.config import Settings, load_settings
from shared.db.engine import SessionFactory
from shared.errors import SettingsError

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

T = TypeVar("T")
Decorator = Callable[[Callable[..., None]], Callable[..., None]]

#: ``--json``: print the record, or the list, as JSON instead of text
_json_object = click.option("--json", "as_json", is_flag=True, help="one JSON object")
_json_list = click.option("--json", "as_json", is_flag=True, help="a JSON list")


@contextlib.contextmanager
def _reported(*errors: type[Exception]) -> Iterator[None]:
    """An error of these types ends the command with its message (exit code 1)."""
    try:
        yield
    except errors as exc:
        raise click.ClickException(str(exc)) from None


def _settings() -> Settings:
    with _reported(SettingsError):
        return load_settings()


def _sessions(settings: Settings | None = None) -> SessionFactory:
    """Sessions for one command; the engine's connections are closed when it ends."""
    from shared.db.engine import make_engine, make_session_factory

    engine = make_engine((settings or _settings()).database_url)
    context = click.get_current_context(silent=True)
    if context is not None:
        context.call_on_close(engine.dispose)
    return make_session_factory(engine)


def _read(query: Callable[[Session], T]) -> T:
    """What ``query`` reads in a session of its own."""
    with _sessions()() as session:
        return query(session)


def _options(*options: Decorator) -> Decorator:
    """Several click options as one decorator, listed by ``--help`` in the order given."""

    def decorate(command: Callable[..., None]) -> Callable[..., None]:
        for option in reversed(options):
            command = option(command)
        return command

    return decorate


@click.group()
def main() -> None:
    """leadflow: self-hosted lead distribution."""
    from shared.lifecycle import die_with_parent

    die_with_parent()  # a copy started by `leadflow up` ends with it


def _register() -> None:
    """Import every command group's module: each adds its commands to ``main`` (they
    import the helpers above, so they are imported once those exist)."""
    from services.cli import (  # noqa: F401
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


_register()
