"""``leadflow intake|router|http-delivery|email-delivery``: run one service in the foreground.

``leadflow feedback`` runs the feedback service too; it is a group (``feedback list``) and
lives in ``services.cli.feedback``.
"""

from __future__ import annotations

import click

from services.cli import _settings


@click.command()
def intake() -> None:
    """Run the intake HTTP service."""
    from services.intake.__main__ import main as run

    run(_settings())


@click.command()
def router() -> None:
    """Run the flow router workers."""
    from services.router.__main__ import main as run

    run()


@click.command("http-delivery")
def http_delivery() -> None:
    """Run the HTTP delivery workers."""
    from services.http_delivery.__main__ import main as run

    run()


@click.command("email-delivery")
def email_delivery() -> None:
    """Run the email delivery workers and the batch scheduler."""
    from services.email_delivery.__main__ import main as run

    run()


@click.command()
def console() -> None:
    """Run the console (the operators' web application)."""
    from services.console.__main__ import main as run

    run(_settings())


COMMANDS = (intake, router, http_delivery, email_delivery, console)
