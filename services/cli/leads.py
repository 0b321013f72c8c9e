"""``leadflow leads``: show a lead, deliver a recipient's pending leads as a file, export."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import click

from services.cli import _json_object, _options, _reported, _sessions, _settings, main
from shared.errors import NotFound, UsageError

if TYPE_CHECKING:
    from services.manual.commands import FileChoice


@main.group()
def leads() -> None:
    """Leads: show, export, manual delivery."""


@leads.command("show")
@click.argument("lead_id")
@_json_object
def leads_show(lead_id: str, as_json: bool) -> None:
    """Print a lead with its events, deliveries and feedback."""
    from shared.leadview import format_report, lead_report
    from shared.money.pricing import to_json

    with _reported(NotFound):
        report = lead_report(_sessions(), lead_id)
    click.echo(to_json(report, indent=2) if as_json else format_report(report))


def _file_options(command: Callable[..., None]) -> Callable[..., None]:
    """--format, --quote/--no-quote, --header/--no-header (given to the command as one
    ``choice``; the recipient's by default) and -o."""

    @functools.wraps(command)
    def with_choice(
        *args: Any, file_format: str | None, quote: bool | None, header: bool | None, **kw: Any
    ) -> None:
        from services.manual.commands import FileChoice

        command(*args, choice=FileChoice(file_format, quote, header), **kw)

    return _options(
        click.option("--format", "file_format", type=click.Choice(["csv", "tsv"])),
        click.option("--quote/--no-quote", default=None, help="quote every field"),
        click.option("--header/--no-header", default=None, help="a header row"),
        click.option("-o", "--output", "path", metavar="FILE", help="default: stdout"),
    )(with_choice)


def _write(write: Callable[[], int]) -> None:
    """Run a command that writes leads as a file; ``N leads`` (or why not) on stderr."""
    from services.manual import commands

    with _reported(UsageError, NotFound):
        count = write()
    click.echo(commands.count_line(count), err=True)


@leads.command("deliver")
@click.option("--recipient", "recipient_id", required=True)
@_file_options
def leads_deliver(recipient_id: str, choice: FileChoice, path: str | None) -> None:
    """Write a recipient's pending leads and mark them delivered (manual delivery)."""
    from services.manual import commands

    _write(lambda: commands.deliver(_settings(), recipient_id, choice, path))


@leads.command("export")
@click.option("--flow", "flow_id", default=None)
@click.option("--recipient", "recipient_id", default=None)
@click.option("--status", default=None, help="a delivery status with --recipient, else an outcome")
@click.option("--since", default=None, help="ISO 8601 date or time (UTC unless given)")
@click.option("--until", default=None, help="ISO 8601 date (inclusive) or time")
@_file_options
def leads_export(choice: FileChoice, path: str | None, **filters: str | None) -> None:
    """Write leads of a flow or a recipient without changing any status."""
    from services.manual import commands

    _write(lambda: commands.export(_settings(), choice=choice, path=path, **filters))
