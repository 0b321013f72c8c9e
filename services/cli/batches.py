"""``leadflow batches``: send a recipient's pending leads by email now, list batches."""

from __future__ import annotations

import click

from services.cli import _reported, _settings, main
from shared.errors import NotFound, UsageError


@main.group()
def batches() -> None:
    """Email batches: send a recipient's pending leads now, list batches."""


@batches.command("send")
@click.option("--recipient", "recipient_id", required=True)
def batches_send(recipient_id: str) -> None:
    """Send a batch recipient's pending leads now ("Deliver Pending Leads")."""
    from services.email_delivery import commands

    with _reported(UsageError, NotFound):
        click.echo(commands.send_now(_settings(), recipient_id))


@batches.command("list")
@click.option("--recipient", "recipient_id", default=None)
@click.option("--state", default=None, help="pending | sent | error")
@click.option("--limit", default=50, show_default=True)
def batches_list(recipient_id: str | None, state: str | None, limit: int) -> None:
    """List batches, newest first: id, recipient, due, created, leads, state, sent at."""
    from services.email_delivery import commands

    with _reported(UsageError):
        lines = commands.batch_lines(_settings(), recipient_id, state, limit)
    click.echo("\n".join(lines))
    click.echo(f"{len(lines) - 1} batch(es)", err=True)
