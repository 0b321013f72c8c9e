"""``leadflow report`` and ``leadflow returns``: profit by source, recipient, flow or day,
and the returns waiting for an operator's decision."""

from __future__ import annotations

import json
from datetime import datetime
from zoneinfo import ZoneInfo

import click

from services.cli import _json_list, _read, _reported, _sessions, _settings, main


@main.command("report")
@click.option(
    "--by", "by", type=click.Choice(["source", "recipient", "flow", "day"]), required=True
)
@click.option(
    "--since", type=click.DateTime(), help="leads received from this day/time (LEADFLOW_TIMEZONE)"
)
@click.option("--until", type=click.DateTime(), help="... up to (not including) this one")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "csv", "json"]),
    default="table",
    show_default=True,
)
def report(by: str, since: datetime | None, until: datetime | None, fmt: str) -> None:
    """Leads, sales and money by source, recipient, flow or day (from the ledger)."""
    from shared.money import reports

    settings = _settings()
    zone = ZoneInfo(settings.timezone)
    with _sessions(settings)() as session:
        rows = reports.report(
            session.connection(),
            by,
            since.replace(tzinfo=zone) if since else None,
            until.replace(tzinfo=zone) if until else None,
            settings.timezone,
        )
    if fmt == "json":
        click.echo(reports.as_json(rows))
        return
    if fmt == "csv":
        click.echo(reports.as_csv(rows, by), nl=False)
        return
    columns, text = reports.as_text(rows, by)
    widths = [max(map(len, column)) for column in zip(columns, *text, strict=True)]
    for line in (columns, *text):
        click.echo("  ".join(value.ljust(width) for value, width in zip(line, widths, strict=True)))


@main.group()
def returns() -> None:
    """Returns: list, approve, reject."""


@returns.command("list")
@click.option("--status", type=click.Choice(["requested", "approved", "rejected"]))
@_json_list
def returns_list(status: str | None, as_json: bool) -> None:
    """Returns, newest first: id, lead, event, recipient, reason, status, time."""
    from shared.money.returns import listing

    rows = _read(lambda session: listing(session, status))
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    for r in rows:
        click.echo(
            f"{r['id']}  lead {r['lead_id']}  event {r['event_id']}  {r['recipient']}  "
            f"{r['status']}  {r['requested_at']}  {r['reason'] or ''}"
        )


def _decide(decide: str, return_id: str, reason: str | None = None) -> None:
    from shared import clock
    from shared.configstore import ConfigStore
    from shared.db.engine import transaction
    from shared.errors import LeadflowError
    from shared.money import returns as money_returns

    factory = _sessions()
    configs = ConfigStore(factory)
    with _reported(LeadflowError), transaction(factory) as session:
        if decide == "approve":
            money_returns.approve(session, configs.get, return_id, clock.now())
        else:
            money_returns.reject(session, return_id, reason or "", clock.now())
    click.echo(f"return {return_id} {'approved' if decide == 'approve' else 'rejected'}")


@returns.command("approve")
@click.argument("return_id")
def approve(return_id: str) -> None:
    """Approve a waiting return: the revenue is reversed and the source told."""
    _decide("approve", return_id)


@returns.command("reject")
@click.argument("return_id")
@click.option("--reason", required=True, help="why (kept with the return)")
def reject(return_id: str, reason: str) -> None:
    """Refuse a waiting return: the delivery is delivered again."""
    _decide("reject", return_id, reason)
