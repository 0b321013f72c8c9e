"""``leadflow caps`` and ``leadflow recipients``: what the caps have used, and pausing."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import click

from services.cli import _json_list, _reported, _sessions, main

if TYPE_CHECKING:
    from shared.db.engine import SessionFactory
    from shared.flowconfig import LeadflowConfig


def _configured() -> tuple[SessionFactory, LeadflowConfig]:
    """Sessions for this command, and the latest configuration."""
    from shared.configstore import ConfigStore
    from shared.errors import LeadflowError

    factory = _sessions()
    with _reported(LeadflowError):
        return factory, ConfigStore(factory).latest()[1]


@main.command("caps")
@_json_list
def caps(as_json: bool) -> None:
    """Every cap: owner, window, used, max, and when it resets."""
    from shared import clock
    from shared.gates.caps import report

    factory, config = _configured()
    with factory() as session:
        rows = report(session.connection(), config, clock.now())
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        click.echo("no caps configured")
        return
    click.echo(f"{'OWNER':<32} {'WINDOW':<7} {'USED':>10} {'MAX':>10}  RESETS AT")
    for row in rows:
        owner = f"{row['owner_type']} {row['owner']}" + (" (rule set)" if row["filtered"] else "")
        click.echo(
            f"{owner:<32} {row['window']:<7} {row['used']:>10} {row['max']:>10}  "
            f"{row['resets_at'] or 'never'}"
        )


@main.group()
def recipients() -> None:
    """Recipients: list with their state, pause, resume."""


@recipients.command("list")
@_json_list
def recipients_list(as_json: bool) -> None:
    """Each recipient: kind, paused, open now."""
    from shared import clock
    from shared.gates import hours, pausing

    factory, config = _configured()
    with factory() as session:
        paused = pausing.paused(session.connection())
    now = clock.now()
    rows = [
        {
            "id": rid,
            "kind": r.kind,
            "paused": rid in paused,
            "open": hours.is_open(r.schedule, r.timezone, now),
            "timezone": r.timezone,
        }
        for rid, r in config.recipients.items()
    ]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    for row in rows:
        state = "paused" if row["paused"] else ("open" if row["open"] else "closed")
        click.echo(f"{row['id']:<32} {row['kind']:<7} {state}")


def _switch(recipient_id: str, value: bool) -> None:
    from shared.db.engine import transaction
    from shared.gates import pausing

    factory, config = _configured()
    if recipient_id not in config.recipients:
        raise click.ClickException(f"unknown recipient '{recipient_id}'")
    with transaction(factory) as session:
        pausing.set_paused(session, recipient_id, value)
    click.echo(f"{recipient_id} {'paused' if value else 'resumed'}")


@recipients.command("pause")
@click.argument("recipient_id")
def pause(recipient_id: str) -> None:
    """Skip this recipient (reason ``Paused``) until it is resumed."""
    _switch(recipient_id, True)


@recipients.command("resume")
@click.argument("recipient_id")
def resume(recipient_id: str) -> None:
    """Send to this recipient again."""
    _switch(recipient_id, False)
