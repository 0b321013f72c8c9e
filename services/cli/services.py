"""``leadflow intake|router|http-delivery|email-delivery``: run one service in the foreground.

``leadflow feedback`` runs the feedback service too; it is a group (``feedback list``) and
lives in ``services.cli.feedback``.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import click

from services.cli import _settings, main


@main.command()
def intake() -> None:
    """Run the intake HTTP service."""
    from services.intake.__main__ import main as run

    run(_settings())


def _pool(
    service: str, threads_variable: str | None = None
) -> Callable[[Callable[[], None]], click.Command]:
    """A worker's command with its pool's size: ``--processes N`` copies, each its own OS
    process (supervised as ``leadflow up --scale`` does), and where the worker has one,
    ``--threads N``: messages in hand at once per process (the setting it names)."""

    def command(run: Callable[[], None]) -> click.Command:
        def start(processes: int, threads: int | None = None) -> None:
            if threads is not None and threads_variable is not None:
                os.environ[threads_variable] = str(threads)  # the copies inherit it
            if processes == 1:
                run()
                return
            from services.cli import up

            up.supervise({**dict.fromkeys(up.SERVICES, 0), service: processes})

        start.__doc__ = run.__doc__
        start = click.option(
            "--processes",
            type=click.IntRange(1),
            default=1,
            show_default=True,
            help="copies of this worker, each its own OS process",
        )(start)
        if threads_variable is not None:
            start = click.option(
                "--threads",
                type=click.IntRange(1),
                default=None,
                help=f"messages in hand at once in each process (sets {threads_variable})",
            )(start)
        return main.command(service)(start)

    return command


@_pool("router")
def router() -> None:
    """Run the flow router workers."""
    from services.router.__main__ import main as run

    run()


@_pool("http-delivery", "LEADFLOW_HTTP_CONCURRENCY")
def http_delivery() -> None:
    """Run the HTTP delivery workers."""
    from services.http_delivery.__main__ import main as run

    run()


@_pool("email-delivery", "LEADFLOW_EMAIL_CONCURRENCY")
def email_delivery() -> None:
    """Run the email delivery workers and the batch scheduler."""
    from services.email_delivery.__main__ import main as run

    run()


@main.command()
def console() -> None:
    """Run the console (the operators' web application)."""
    from services.console.__main__ import main as run

    run(_settings())
