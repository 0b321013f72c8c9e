"""``leadflow feedback``: run the feedback HTTP service, or list received feedback."""

from __future__ import annotations

import click

from services.cli import _sessions, _settings, main


@main.group(invoke_without_command=True)
@click.pass_context
def feedback(ctx: click.Context) -> None:
    """Run the feedback HTTP service (no subcommand), or list received feedback."""
    if ctx.invoked_subcommand is None:
        from services.feedback.__main__ import main as run

        run(_settings())


@feedback.command("list")
@click.option("--recipient", default=None, help="a recipient id")
@click.option(
    "--since",
    default=None,
    help="received at or after this ISO 8601 date or time (UTC unless it has an offset)",
)
@click.option(
    "--accepted/--refused",
    "accepted",
    default=None,
    help="only accepted feedback, or only feedback not accepted (refused or in error)",
)
def feedback_list(recipient: str | None, since: str | None, accepted: bool | None) -> None:
    """List received feedback for reconciliation: received at, lead, event, recipient,
    type, outcome, reason."""
    from services.feedback.listing import HEADER, received_feedback
    from shared.dates import parse_when

    try:
        since_at = parse_when(since) if since else None
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--since") from None
    rows = received_feedback(_sessions(), recipient=recipient, since=since_at, accepted=accepted)
    click.echo(HEADER)
    for row in rows:
        click.echo(row.line())
    click.echo(f"{len(rows)} feedback request(s)", err=True)
