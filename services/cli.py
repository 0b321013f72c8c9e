"""The ``leadflow`` command: run services, apply configuration, inspect leads."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, TextIO

import click

from shared.config import Settings, load_settings
from shared.db.engine import SessionFactory
from shared.errors import ConfigError, NotFound, SettingsError

if TYPE_CHECKING:
    from shared.db.models import DeadLetter


def _settings() -> Settings:
    try:
        return load_settings()
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from None


def _sessions(settings: Settings) -> SessionFactory:
    """Sessions for one command; the engine's connections are closed when it ends."""
    from shared.db.engine import make_engine, make_session_factory

    engine = make_engine(settings.database_url)
    context = click.get_current_context(silent=True)
    if context is not None:
        context.call_on_close(engine.dispose)
    return make_session_factory(engine)


@click.group()
def main() -> None:
    """leadflow: self-hosted lead distribution."""
    from shared.lifecycle import die_with_parent

    die_with_parent()  # a copy started by `leadflow up` ends with it


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
    rows = received_feedback(
        _sessions(_settings()), recipient=recipient, since=since_at, accepted=accepted
    )
    click.echo(HEADER)
    for row in rows:
        click.echo(row.line())
    click.echo(f"{len(rows)} feedback request(s)", err=True)


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
    # Worker copies get consecutive metrics ports from LEADFLOW_METRICS_PORT (0: none).
    base = _settings().metrics_port
    sys.exit(supervisor.run(counts, metrics_base_port=base or None))


# --- database ------------------------------------------------------------------------------


@main.group()
def db() -> None:
    """Database schema."""


@db.command("upgrade")
def db_upgrade() -> None:
    """Apply every migration."""
    from shared.db.migrate import upgrade

    before, after = upgrade(_settings().database_url)
    if before == after:
        click.echo(f"database is up to date (revision {after})", err=True)
    else:
        click.echo(f"database upgraded from revision {before or 'none'} to {after}", err=True)


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


def _file_options(command):
    """--format, --quote/--no-quote, --header/--no-header, -o: the recipient's by default."""
    for option in reversed(
        [
            click.option("--format", "file_format", type=click.Choice(["csv", "tsv"])),
            click.option("--quote/--no-quote", default=None, help="quote every field"),
            click.option("--header/--no-header", default=None, help="a header row"),
            click.option("-o", "--output", "path", metavar="FILE", help="default: stdout"),
        ]
    ):
        command = option(command)
    return command


@leads.command("deliver")
@click.option("--recipient", "recipient_id", required=True)
@_file_options
def leads_deliver(
    recipient_id: str,
    file_format: str | None,
    quote: bool | None,
    header: bool | None,
    path: str | None,
) -> None:
    """Write a recipient's pending leads and mark them delivered (manual delivery)."""
    from services.email_delivery import commands

    choice = commands.FileChoice(file_format, quote, header)
    try:
        count = commands.deliver(_settings(), recipient_id, choice, path)
    except (commands.UsageError, NotFound) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(commands.count_line(count), err=True)


@leads.command("export")
@click.option("--flow", "flow_id", default=None)
@click.option("--recipient", "recipient_id", default=None)
@click.option("--status", default=None, help="a delivery status with --recipient, else an outcome")
@click.option("--since", default=None, help="ISO 8601 date or time (UTC unless given)")
@click.option("--until", default=None, help="ISO 8601 date (inclusive) or time")
@_file_options
def leads_export(
    flow_id: str | None,
    recipient_id: str | None,
    status: str | None,
    since: str | None,
    until: str | None,
    file_format: str | None,
    quote: bool | None,
    header: bool | None,
    path: str | None,
) -> None:
    """Write leads of a flow or a recipient without changing any status."""
    from services.email_delivery import commands

    choice = commands.FileChoice(file_format, quote, header)
    try:
        count = commands.export(
            _settings(),
            flow_id=flow_id,
            recipient_id=recipient_id,
            status=status,
            since=since,
            until=until,
            choice=choice,
            path=path,
        )
    except (commands.UsageError, NotFound) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(commands.count_line(count), err=True)


# --- email batches -------------------------------------------------------------------------


@main.group()
def batches() -> None:
    """Email batches: send a recipient's pending leads now, list batches."""


@batches.command("send")
@click.option("--recipient", "recipient_id", required=True)
def batches_send(recipient_id: str) -> None:
    """Send a batch recipient's pending leads now ("Deliver Pending Leads")."""
    from services.email_delivery import commands

    try:
        click.echo(commands.send_now(_settings(), recipient_id))
    except (commands.UsageError, NotFound) as exc:
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
    except commands.UsageError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo("\n".join(lines))
    click.echo(f"{len(lines) - 1} batch(es)", err=True)


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


@dead.command("show")
@click.argument("key", metavar="ID")
def dead_show(key: str) -> None:
    """Why a message was parked: its failures and the delivery's attempts (ID: message,
    event or lead id)."""
    from services.operator import parked_detail

    detail = parked_detail(_sessions(_settings()), key)
    if detail is None:
        raise click.ClickException(f"no parked message for {key}")
    letter = detail.letter
    click.echo(f"message {letter.message_id} on {letter.queue} ({letter.state})")
    click.echo(
        f"  lead {letter.lead_id or '-'}  event {letter.event_id or '-'}  "
        f"recipient {letter.recipient_id or '-'}"
    )
    click.echo(f"  parked at {letter.parked_at} after {letter.attempts} attempt(s)")
    for failure in letter.failures.get("failures", []):
        click.echo(f"  attempt {failure['attempt']} at {failure['at']}: {failure['reason']}")
    if detail.attempts:
        click.echo("delivery attempts:")
        for attempt in detail.attempts:
            click.echo(
                f"  #{attempt.number} {attempt.at} {attempt.ms} ms "
                f"status {attempt.status or '-'} {attempt.error or ''}"
            )


def _selected(queue: str | None, recipient: str | None, lead_id: str | None) -> list[DeadLetter]:
    from services.operator import parked_messages

    if not (queue or recipient or lead_id):
        raise click.UsageError("name what to act on: --queue, --recipient or --lead")
    return parked_messages(
        _sessions(_settings()), queue=queue, recipient=recipient, lead_id=lead_id
    )


def _dead_filters(command: Callable[..., None]) -> Callable[..., None]:
    for option in reversed(
        [
            click.option("--queue", default=None, help="a work queue, e.g. http_delivery"),
            click.option("--recipient", default=None),
            click.option("--lead", "lead_id", default=None),
            click.option("--yes", is_flag=True, help="do not ask for confirmation"),
        ]
    ):
        command = option(command)
    return command


@dead.command("replay")
@_dead_filters
def dead_replay(queue: str | None, recipient: str | None, lead_id: str | None, yes: bool) -> None:
    """Put parked messages back on their work queue; their deliveries run again."""
    from services.operator import replay

    rows = _selected(queue, recipient, lead_id)
    if rows and not yes:
        click.confirm(f"replay {len(rows)} parked message(s)?", abort=True)
    settings = _settings()
    count = replay(_sessions(settings), settings.broker_url, rows, settings.queue_type)
    click.echo(f"replayed {count} message(s)", err=True)


@dead.command("purge")
@_dead_filters
def dead_purge(queue: str | None, recipient: str | None, lead_id: str | None, yes: bool) -> None:
    """Remove parked messages for good (asks for confirmation unless --yes)."""
    from services.operator import purge

    rows = _selected(queue, recipient, lead_id)
    if rows and not yes:
        click.confirm(f"purge {len(rows)} parked message(s)? This cannot be undone", abort=True)
    settings = _settings()
    count = purge(_sessions(settings), settings.broker_url, rows, settings.queue_type)
    click.echo(f"purged {count} message(s)", err=True)


if __name__ == "__main__":
    main()
