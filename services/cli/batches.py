"""``leadflow batches``: send a recipient's pending leads by email now, list batches."""

from __future__ import annotations

import click

from services.cli import _settings
from shared.errors import NotFound, UsageError


@click.group()
def batches() -> None:
    """Email batches: send a recipient's pending leads now, list batches."""


@batches.command("send")
@click.option("--recipient", "recipient_id", required=True)
def batches_send(recipient_id: str) -> None:
    """Send a batch recipient's pending leads now ("Deliver Pending Leads")."""
    from services.email_delivery import commands

    try:
        click.echo(commands.send_now(_settings(), recipient_id))
    except (UsageError, NotFound) as exc:
        raise click.ClickException(str(exc)) from None


@batches.command("list")
@click.option("--recipient", "recipient_id", default=None)
@click.option("--state", default=None, help="pending | sent | error")
@click.option("--limit", default=50, show_default=True)
def batches_list(recipient_id: str | None, state: str | None, limit: int) -> None:
    """List batches, newest first: id, recipient, due, created, leads, state, sent at."""
    from services.email_delivery import commands

    try:
        lines = commands.batch_lines(_settings(), recipient_id, state, limit)
    except UsageError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo("\n".join(lines))
    click.echo(f"{len(lines) - 1} batch(es)", err=True)
