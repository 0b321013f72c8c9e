"""``leadflow pings show``: a source's ping, its bids and the lead it became."""

from __future__ import annotations

from typing import Any

import click

from services.cli import _json_object, _read, main


@main.group()
def pings() -> None:
    """Pings of sources (ping/post)."""


@pings.command("show")
@click.argument("ping_id")
@_json_object
def pings_show(ping_id: str, as_json: bool) -> None:
    """Print a ping: its fields, answer, bids and the lead posted against it."""
    from shared.money.pricing import to_json
    from shared.pings import ping_report

    report = _read(lambda session: ping_report(session.connection(), ping_id))
    if report is None:
        raise click.ClickException(f"no ping {ping_id}")
    click.echo(to_json(report, indent=2) if as_json else _text(report))


def _text(report: dict[str, Any]) -> str:
    lines = [
        f"ping {report['id']}  flow {report['flow_id']}  source {report['source_id']}",
        f"  answer: {report['outcome']}"
        + (f" ({report['reason']})" if report["reason"] else "")
        + f"  price: {report['price']}  {report['ms']} ms",
        f"  received: {report['created_at']}  expires: {report['expires_at']}",
        f"  lead: {report['lead_id'] or '-'}",
        "  fields:",
        *[f"    {k}: {v}" for k, v in report["fields"].items()],
        "bids:",
    ]
    for bid in report["bids"]:
        reason = f" ({bid['reason']})" if bid["reason"] else ""
        reference = f"  reference {bid['reference']}" if bid["reference"] else ""
        lines.append(
            f"  step {bid['step']} {bid['recipient']}: {bid['outcome']} {bid['bid']}"
            f"{reason}  {bid['ms']} ms{reference}"
        )
    return "\n".join(lines)
