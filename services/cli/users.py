"""``leadflow users add|list``: who may use the console."""

from __future__ import annotations

import sys

import click

from services.cli import _read, _reported, _sessions, main


@main.group()
def users() -> None:
    """Console users."""


@users.command("add")
@click.argument("name")
@click.option("--role", type=click.Choice(["viewer", "operator"]), required=True)
@click.option("--password", help="the password (left out: asked twice on standard input)")
@click.option(
    "--password-stdin", is_flag=True, help="read the password from one line of standard input"
)
def users_add(name: str, role: str, password: str | None, password_stdin: bool) -> None:
    """Add a console user, or set the role and password of one (a viewer reads; an
    operator also acts)."""
    from shared import users as people
    from shared.db.engine import transaction
    from shared.errors import UsageError

    if password is None:
        password = _read_password(once=password_stdin)
    with _reported(UsageError), transaction(_sessions()) as session:
        person, created = people.add(session, name, role, password)
    click.echo(f"user {person.name} {'added' if created else 'updated'} ({person.role})")
    if len(password) < people.ADVISED_PASSWORD:
        click.echo(
            f"warning: a password under {people.ADVISED_PASSWORD} characters is easy to guess",
            err=True,
        )


def _read_password(once: bool) -> str:
    """From a terminal: asked twice, hidden. From a pipe: one line (``--password-stdin``)
    or two that must match."""
    if sys.stdin.isatty() and not once:
        return str(click.prompt("Password", hide_input=True, confirmation_prompt=True))
    first = sys.stdin.readline().rstrip("\r\n")
    if once:
        return first
    if sys.stdin.readline().rstrip("\r\n") != first:
        raise click.ClickException("the two passwords differ")
    return first


@users.command("list")
def users_list() -> None:
    """List the console users."""
    from shared import users as people

    for person in _read(people.listing):
        click.echo(f"{person.name}\t{person.role}")
