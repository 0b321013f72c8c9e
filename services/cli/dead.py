"""``leadflow dead``: messages parked after their retries: list, show, replay, purge."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import click

from services.cli import _options, _sessions, _settings, main

if TYPE_CHECKING:
    from shared.db.engine import SessionFactory
    from shared.db.models import DeadLetter
    from shared.deadletters import ParkedDetail

    Action = Callable[[SessionFactory, str, list[DeadLetter], str], int]


@main.group()
def dead() -> None:
    """Messages parked after their retries (mirrored in the database)."""


def _work_queue(_ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    """The work queue as the services name it: ``http_delivery`` also written
    ``http-delivery`` or as its dead-letter queue, ``http_delivery.XQ``."""
    if value is None:
        return None
    name = value.strip().replace("-", "_")
    return name[: -len(".XQ")] if name.upper().endswith(".XQ") else name


#: --queue, --recipient, --lead: which parked messages (a command takes them as
#: ``**filters``); --yes on every command alike (only purge asks first)
_filters = _options(
    click.option(
        "--queue", default=None, callback=_work_queue, help="a work queue, e.g. http_delivery"
    ),
    click.option("--recipient", default=None),
    click.option("--lead", "lead_id", default=None),
    click.option("--yes", is_flag=True, help="do not ask for confirmation (purge asks)"),
)


@dead.command("list")
@_filters
def dead_list(yes: bool, **filters: Any) -> None:
    """List parked messages: queue, lead, event, recipient, attempts, last reason, parked at."""
    from shared.deadletters import parked_messages

    rows = parked_messages(_sessions(), **filters)
    click.echo(
        f"{'queue':<16} {'lead':<24} {'event':<24} {'recipient':<16} attempts  "
        f"{'last reason':<40} parked at"
    )
    for row in rows:
        reason = " ".join((row.last_reason or "-").split())
        reason = reason if len(reason) <= 40 else f"{reason[:37]}..."
        click.echo(
            f"{row.queue:<16} {row.lead_id or '-':<24} {row.event_id or '-':<24} "
            f"{row.recipient_id or '-':<16} {row.attempts:>8}  "
            f"{reason:<40} {row.parked_at.isoformat()}"
        )
    click.echo(f"{len(rows)} parked message(s)", err=True)


@dead.command("show")
@click.argument("key", metavar="[ID]", required=False)
@_filters
def dead_show(key: str | None, yes: bool, **filters: Any) -> None:
    """Why a message was parked: its failures and the delivery's attempts (ID: message,
    event or lead id; or every parked message the filters name)."""
    from shared.deadletters import parked_detail, parked_messages

    sessions = _sessions()
    if key is not None:
        details = [parked_detail(sessions, key)]
    else:
        details = [
            parked_detail(sessions, r.message_id) for r in parked_messages(sessions, **filters)
        ]
    shown = [detail for detail in details if detail is not None]
    if not shown:
        raise click.ClickException(f"no parked message for {key or 'these filters'}")
    for detail in shown:
        _show(detail)


def _show(detail: ParkedDetail) -> None:
    from shared.db.engine import iso_utc

    letter = detail.letter
    click.echo(f"message {letter.message_id} on {letter.queue} ({letter.state})")
    click.echo(
        f"  lead {letter.lead_id or '-'}  event {letter.event_id or '-'}  "
        f"recipient {letter.recipient_id or '-'}"
    )
    click.echo(f"  parked at {iso_utc(letter.parked_at) or '-'} after {letter.attempts} attempt(s)")
    for failure in letter.failures.get("failures", []):
        click.echo(f"  attempt {failure['attempt']} at {failure['at']}: {failure['reason']}")
    if detail.attempts:
        click.echo("delivery attempts:")
        for attempt in detail.attempts:
            click.echo(
                f"  #{attempt.number} {attempt.at} {attempt.ms} ms "
                f"status {attempt.status or '-'} {attempt.error or ''}"
            )


def _act(filters: dict[str, Any], action: Action, done: str, ask: str | None = None) -> None:
    """Select the parked messages the filters name (none: every one), ask first when
    there is an ``ask``, then act on them; ``ask`` and ``done`` take the count as ``{}``."""
    from shared.deadletters import parked_messages

    settings = _settings()
    sessions = _sessions(settings)
    rows = parked_messages(sessions, **filters)
    if rows and ask is not None:
        click.confirm(ask.format(len(rows)), abort=True)
    count = action(sessions, settings.broker_url, rows, settings.queue_type)
    click.echo(done.format(count), err=True)


@dead.command("replay")
@_filters
def dead_replay(yes: bool, **filters: Any) -> None:
    """Put parked messages back on their work queue; their deliveries run again."""
    from shared.deadletters import replay

    _act(filters, replay, "replayed {} message(s)")


@dead.command("purge")
@_filters
def dead_purge(yes: bool, **filters: Any) -> None:
    """Remove parked messages for good (asks for confirmation unless --yes)."""
    from shared.deadletters import purge

    question = "purge {} parked message(s)? This cannot be undone"
    _act(filters, purge, "purged {} message(s)", None if yes else question)
