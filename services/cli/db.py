"""``leadflow db``: the database schema."""

from __future__ import annotations

import click

from services.cli import _settings, main


@main.group()
def db() -> None:
    """Database schema."""


@db.command("upgrade")
def db_upgrade() -> None:
    """Apply every migration."""
    from shared.db.migrate import upgrade

    before, after = upgrade(_settings().database_url)
    if before == after:
        click.echo(f"database is up to date (revision {after})", err=True)
    else:
        click.echo(f"database upgraded from revision {before or 'none'} to {after}", err=True)
