"""The console's operations pages: dead letters, manual delivery, reports, flows. Each
action calls what its CLI command calls (``shared.deadletters``, ``services.manual``,
``shared.money.reports``); pages read through ``services.console.queries``."""

from __future__ import annotations

import difflib
import io
import logging
from datetime import datetime
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

from aiohttp import web
from sqlalchemy.orm import Session

from services.console import auth, queries
from services.console.views import page, read
from services.manual import files as manual_files
from shared import clock, deadletters
from shared.db.engine import SessionFactory
from shared.errors import LeadflowError
from shared.money import reports as money_reports
from shared.web import CONFIG, FACTORY, SETTINGS, run_db

logger = logging.getLogger(__name__)


# --- dead letters ---------------------------------------------------------------------------


async def dead_letters(request: web.Request) -> web.Response:
    asked = {name: request.query.get(name, "").strip() for name in ("queue", "recipient", "lead")}
    after = request.query.get("after", "")

    def load() -> list[Any]:
        return deadletters.parked_messages(
            request.app[FACTORY],
            queue=asked["queue"] or None,
            recipient=asked["recipient"] or None,
            lead_id=asked["lead"] or None,
            after=int(after) if after.isdigit() else None,
            limit=queries.PAGE + 1,
        )

    letters, next_after = queries.first_page(await run_db(request.app, load), lambda row: row.id)
    return page(request, "dead.html", letters=letters, asked=asked, next_after=next_after)


async def dead_letter(request: web.Request) -> web.Response:
    """One parked message: why it was parked, and its delivery's attempts."""
    message_id = request.match_info["message_id"]
    detail = await run_db(request.app, _detail, request.app[FACTORY], message_id)
    if detail is None:
        return page(request, "missing.html", status=404, what=f"dead letter {message_id}")
    return page(request, "dead_letter.html", detail=detail)


async def act_on_dead_letter(request: web.Request) -> web.StreamResponse:
    """Replay a parked message, or purge it once confirmed (the first press of Purge
    answers a page asking to confirm)."""
    person = auth.operator(request)
    action, message_id = request.match_info["action"], request.match_info["message_id"]
    form = await request.post()
    settings = request.app[SETTINGS]
    factory = request.app[FACTORY]
    detail = await run_db(request.app, _detail, factory, message_id)
    if detail is None or detail.letter.state != "parked":
        raise web.HTTPNotFound(text=f"no parked message {message_id}")
    letter = detail.letter
    if action == "purge" and form.get("confirm") != "yes":
        return page(
            request,
            "confirm.html",
            title="Purge a dead letter",
            question=(
                f"Purge the parked message {message_id} (lead {letter.lead_id or '-'})? "
                "It is deleted from its dead-letter queue and cannot be replayed."
            ),
            action=f"/dead/{quote(message_id, safe='')}/purge",
            back="/dead",
        )
    act = deadletters.replay if action == "replay" else deadletters.purge
    done = await run_db(
        request.app, act, factory, settings.broker_url, [letter], settings.queue_type
    )
    logger.info(
        "%s: %s %d parked message(s) from the console",
        person.name,
        action,
        done,
        extra={"lead_id": letter.lead_id, "event_id": letter.event_id},
    )
    raise web.HTTPSeeOther("/dead")


def _detail(factory: SessionFactory, message_id: str) -> deadletters.ParkedDetail | None:
    """The dead letter of this message id (not one found by its lead or event id)."""
    found = deadletters.parked_detail(factory, message_id)
    return found if found is not None and found.letter.message_id == message_id else None


# --- manual delivery --------------------------------------------------------------------------


async def manual(request: web.Request) -> web.Response:
    def load(session: Session) -> list[dict[str, Any]]:
        _, config = request.app[CONFIG].latest()
        counts = queries.pending_counts(session.connection())
        return [
            {"id": rid, "name": r.name or rid, "pending": counts.get(rid, 0)}
            for rid, r in sorted(config.recipients.items())
            if r.leaves_pending
        ]

    return page(request, "manual.html", recipients=await read(request.app, load))


async def manual_download(request: web.Request) -> web.StreamResponse:
    """The recipient's pending leads as a file, marked delivered (``leadflow leads
    deliver``), once the operator confirmed (the first press answers a page asking)."""
    person = auth.operator(request)
    recipient_id = request.match_info["recipient_id"]
    form = await request.post()
    configs = request.app[CONFIG]
    _, config = configs.latest()
    recipient = config.recipients.get(recipient_id)
    if recipient is None or not recipient.leaves_pending:
        raise web.HTTPNotFound(text=f"no recipient '{recipient_id}' with leads pending")
    if form.get("confirm") != "yes":
        return page(
            request,
            "confirm.html",
            title="Download pending leads",
            question=(
                f"Download the leads waiting for {recipient.name or recipient_id}? "
                "They are marked delivered (and sold) as the file is made."
            ),
            action=f"/manual/{quote(recipient_id, safe='')}/download",
            back="/manual",
        )
    out = io.StringIO()
    count = await run_db(
        request.app, manual_files.deliver, request.app[FACTORY], configs, recipient_id, out
    )
    file_format = manual_files.recipient_file(config, recipient_id).format
    logger.info("%s downloaded %d lead(s) of %s", person.name, count, recipient_id)
    stamp = clock.now().strftime("%Y%m%d-%H%M%S")
    return web.Response(
        text=out.getvalue(),
        content_type="text/csv" if file_format == "csv" else "text/tab-separated-values",
        headers={
            "Content-Disposition": f'attachment; filename="{recipient_id}-{stamp}.{file_format}"'
        },
    )


# --- reports and flows --------------------------------------------------------------------------


async def reports_page(request: web.Request) -> web.StreamResponse:
    by = request.query.get("by", "source")
    if by not in money_reports.BY:
        raise web.HTTPBadRequest(text=f"by must be one of {', '.join(money_reports.BY)}")
    zone = request.app[SETTINGS].timezone
    since = _day(request.query.get("since"), zone)
    until = _day(request.query.get("until"), zone)
    rows = await read(
        request.app,
        lambda session: money_reports.report(session.connection(), by, since, until, zone),
    )
    if request.query.get("format") == "csv":
        return web.Response(
            text=money_reports.as_csv(rows, by),
            content_type="text/csv",
            headers={"Content-Disposition": f'attachment; filename="report-by-{by}.csv"'},
        )
    peak = max((abs(float(r["profit"])) for r in rows), default=0.0) or 1.0
    return page(
        request,
        "reports.html",
        rows=rows,
        columns=[by, *money_reports.COLUMNS],
        money=money_reports.MONEY,
        by=by,
        bys=money_reports.BY,
        since=request.query.get("since", ""),
        until=request.query.get("until", ""),
        peak=peak,
    )


def _day(text: str | None, zone: str) -> datetime | None:
    """A day (or time) the operator typed, in the deployment's zone."""
    if not text:
        return None
    try:
        return datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(zone))
    except ValueError:
        raise web.HTTPBadRequest(text=f"not a date: {text!r} (use YYYY-MM-DD)") from None


async def flows(request: web.Request) -> web.Response:
    def load(session: Session) -> dict[str, Any]:
        version, config = request.app[CONFIG].latest()
        zones = {flow_id: flow.timezone for flow_id, flow in config.flows.items()}
        counts = queries.today_by_flow(session.connection(), clock.now(), zones)
        versions = queries.config_versions(session.connection())
        return {"version": version, "config": config, "counts": counts, "versions": versions}

    return page(request, "flows.html", **await read(request.app, load))


async def config_diff(request: web.Request) -> web.Response:
    """What a configuration version changed from the one before it."""
    configs = request.app[CONFIG]
    try:
        version = int(request.match_info["version"])
    except ValueError:
        raise web.HTTPNotFound() from None

    def text(number: int) -> str | None:
        try:
            return configs.source_text(number)[1]
        except LeadflowError:
            return None

    now = await run_db(request.app, text, version)
    if now is None:
        raise web.HTTPNotFound(text=f"no configuration version {version}")
    before = await run_db(request.app, text, version - 1) or ""
    diff = difflib.unified_diff(
        before.splitlines(),
        now.splitlines(),
        f"version {version - 1}",
        f"version {version}",
        lineterm="",
    )
    return page(request, "diff.html", version=version, diff=list(diff))
