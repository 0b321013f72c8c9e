"""The ``leadflow`` command: run services, apply configuration, inspect leads."""

from __future__ import annotations

import json
import os
import sys
from typing import TextIO

import click

from shared.config import Settings, load_settings
from shared.db.engine import SessionFactory
from shared.errors import ConfigError, NotFound, SettingsError


def _settings() -> Settings:
    try:
        return load_settings()
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from None


def _sessions(settings: Settings) -> SessionFactory:
    from shared.db.engine import make_engine, make_session_factory

    return make_session_factory(make_engine(settings.database_url))


@click.group()
def main() -> None:
    """leadflow: self-hosted lead distribution."""


# --- services ------------------------------------------------------------------------------


@main.command()
def intake() -> None:
    """Run the intake HTTP service."""
    from services.intake.__main__ import main as run

    run(_settings())


@main.command()
def router() -> None:
    """Run the flow router workers."""
    from services.router.__main__ import main as run

    run()


@main.command("http-delivery")
def http_delivery() -> None:
    """Run the HTTP delivery workers."""
    from services.http_delivery.__main__ import main as run

    run()


@main.command("email-delivery")
def email_delivery() -> None:
    """Run the email delivery workers and the batch scheduler."""
    from services.email_delivery.__main__ import main as run

    run()


@main.command()
def feedback() -> None:
    """Run the feedback HTTP service."""
    from services.feedback.__main__ import main as run

    run()


@main.command()
@click.option(
    "--scale",
    multiple=True,
    metavar="SERVICE=N",
    help="copies of a service, e.g. --scale http-delivery=4",
)
def up(scale: tuple[str, ...]) -> None:
    """Run every service on this machine in the foreground (Ctrl-C stops them)."""
    from services import supervisor

    try:
        counts = supervisor.parse_scale(scale)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--scale") from None
    sys.exit(supervisor.run(counts))


# --- database ------------------------------------------------------------------------------


@main.group()
def db() -> None:
    """Database schema."""


@db.command("upgrade")
def db_upgrade() -> None:
    """Apply every migration."""
    from shared.db.migrate import upgrade

    upgrade(_settings().database_url)
    click.echo("database is up to date", err=True)


# --- configuration -------------------------------------------------------------------------


@main.group()
def config() -> None:
    """Recipients and flows (the YAML file)."""


def _fail_config(exc: ConfigError) -> None:
    click.echo(f"configuration is invalid ({len(exc.problems)} problem(s)):", err=True)
    for problem in exc.problems:
        click.echo(f"  {problem}", err=True)
    sys.exit(1)


@config.command("check")
@click.argument("file", type=click.File("r"))
def config_check(file: TextIO) -> None:
    """Validate FILE without storing it."""
    from shared.flowconfig import load_config_text

    try:
        parsed = load_config_text(file.read(), os.environ)
    except ConfigError as exc:
        _fail_config(exc)
        return
    click.echo(
        f"configuration is valid: {len(parsed.recipients)} recipient(s), "
        f"{len(parsed.flows)} flow(s)"
    )


@config.command("apply")
@click.argument("file", type=click.File("r"))
def config_apply(file: TextIO) -> None:
    """Validate FILE and store it as the new version every service uses."""
    from shared.configstore import apply_config

    try:
        applied = apply_config(_sessions(_settings()), file.read(), os.environ)
    except ConfigError as exc:
        _fail_config(exc)
        return
    if applied.created:
        click.echo(f"applied configuration version {applied.version}")
    else:
        click.echo(f"configuration unchanged (version {applied.version})")


@config.command("show")
@click.option("--version", "version", type=int, default=None, help="a stored version")
def config_show(version: int | None) -> None:
    """Print the stored configuration (newest version by default)."""
    from shared.configstore import ConfigStore

    try:
        number, text = ConfigStore(_sessions(_settings())).source_text(version)
    except NotFound as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"# version {number}", err=True)
    click.echo(text, nl=not text.endswith("\n"))


# --- leads ---------------------------------------------------------------------------------


@main.group()
def leads() -> None:
    """Leads: show, export, manual delivery."""


@leads.command("show")
@click.argument("lead_id")
@click.option("--json", "as_json", is_flag=True, help="one JSON object")
def leads_show(lead_id: str, as_json: bool) -> None:
    """Print a lead with its events, deliveries and feedback."""
    from services.reports import format_report, lead_report

    try:
        report = lead_report(_sessions(_settings()), lead_id)
    except NotFound as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(json.dumps(report, indent=2) if as_json else format_report(report))


# --- dead letters --------------------------------------------------------------------------


@main.group()
def dead() -> None:
    """Messages parked after their retries (mirrored in the database)."""


@dead.command("list")
@click.option("--queue", default=None, help="a work queue, e.g. http_delivery")
@click.option("--recipient", default=None)
@click.option("--lead", "lead_id", default=None)
def dead_list(queue: str | None, recipient: str | None, lead_id: str | None) -> None:
    """List parked messages: queue, lead, event, recipient, attempts, last reason, parked at."""
    from services.operator import parked_messages

    rows = parked_messages(
        _sessions(_settings()), queue=queue, recipient=recipient, lead_id=lead_id
    )
    click.echo(
        f"{'queue':<16} {'lead':<24} {'event':<24} {'recipient':<16} attempts  "
        f"{'parked at':<25} last reason"
    )
    for row in rows:
        click.echo(
            f"{row.queue:<16} {row.lead_id or '-':<24} {row.event_id or '-':<24} "
            f"{row.recipient_id or '-':<16} {row.attempts:>8}  "
            f"{row.parked_at.isoformat():<25} {row.last_reason or ''}"
        )
    click.echo(f"{len(rows)} parked message(s)", err=True)


if __name__ == "__main__":
    main()
