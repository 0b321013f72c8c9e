"""``leadflow users add|list``: who may use the console."""

from __future__ import annotations

import sys

import click

from services.cli import _sessions, _settings


@click.group()
def users() -> None:
    """Console users."""


@users.command("add")
@click.argument("name")
@click.option("--role", type=click.Choice(["viewer", "operator"]), required=True)
@click.option(
    "--password-stdin", is_flag=True, help="read the password from standard input (scripts)"
)
def users_add(name: str, role: str, password_stdin: bool) -> None:
    """Add a console user (a viewer reads; an operator also acts)."""
    from shared import users as people
    from shared.db.engine import transaction
    from shared.errors import UsageError

    if password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    try:
        with transaction(_sessions(_settings())) as session:
            person = people.add(session, name, role, password)
    except UsageError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"user {person.name} added ({person.role})")


@users.command("list")
def users_list() -> None:
    """List the console users."""
    from shared import users as people

    with _sessions(_settings())() as session:
        for person in people.listing(session):
            click.echo(f"{person.name}\t{person.role}")
