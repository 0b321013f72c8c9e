"""The console's pages: thin views over the same functions the CLI calls
(``shared.leadview``, ``shared.gates``, ``shared.money``); the console adds pages, never
logic."""

from __future__ import annotations

import csv
import difflib
import io
import logging
from datetime import UTC, datetime
from typing import Any

import aiohttp_jinja2
from aiohttp import web

from services.console import auth, queries
from services.manual import files as manual_files
from shared import clock, deadletters, users
from shared.configstore import ConfigStore
from shared.db.engine import transaction
from shared.errors import LeadflowError, NotFound
from shared.gates import caps, hours, pausing
from shared.leadview import lead_report
from shared.messaging import EMAIL_DELIVERY, FEEDBACK, HTTP_DELIVERY, ROUTER
from shared.messaging.admin import queue_stats
from shared.money import reports as money_reports
from shared.money import returns as money_returns
from shared.web import CONFIG, FACTORY, SETTINGS, run_db

logger = logging.getLogger(__name__)
OUTCOMES = ("success", "failure", "error", "queued")
WORK_QUEUES = (ROUTER, HTTP_DELIVERY, EMAIL_DELIVERY, FEEDBACK)


def _page(request: web.Request, template: str, **context: Any) -> web.Response:
    person = request.get(auth.PERSON)
    session = request.get(auth.SESSION)
    return aiohttp_jinja2.render_template(
        template,
        request,
        {"person": person, "csrf": session.csrf if session else "", **context},
    )


# --- signing in -------------------------------------------------------------------------


async def login_form(request: web.Request) -> web.Response:
    return _page(request, "login.html", failed=False)


async def login(request: web.Request) -> web.StreamResponse:
    address = request.remote or "?"
    brake = request.app[auth.BRAKE]
    wait = brake.wait_seconds(address)
    if wait > 0:
        response = _page(request, "login.html", failed=True, braked=True)
        response.set_status(429)
        response.headers["Retry-After"] = str(int(wait) + 1)
        return response
    form = await request.post()
    name, password = str(form.get("name", "")), str(form.get("password", ""))

    def check() -> users.Person | None:
        with request.app[FACTORY]() as session:
            return users.check(session, name, password)

    person = await run_db(request.app, check)
    if person is None:
        brake.failed(address)
        logger.info("failed console login for %r from %s", name[:64], address)
        response = _page(request, "login.html", failed=True, braked=False)
        response.set_status(401)
        return response
    brake.succeeded(address)
    cookie, _ = request.app[auth.SIGNER].issue(person.id)
    response = web.HTTPFound("/")
    auth.set_cookie(request, response, cookie)
    logger.info("%s signed in to the console", person.name)
    raise response


async def logout(request: web.Request) -> web.StreamResponse:
    response = web.HTTPFound("/login")
    response.del_cookie(auth.COOKIE, path="/")
    raise response


# --- reading ----------------------------------------------------------------------------


async def dashboard(request: web.Request) -> web.Response:
    configs: ConfigStore = request.app[CONFIG]

    def load() -> dict[str, Any]:
        now = clock.now()
        with request.app[FACTORY]() as session:
            connection = session.connection()
            _, config = configs.latest()
            paused = pausing.paused(connection)
            capped = [
                row
                for row in caps.report(connection, config, now)
                if row["max"] and float(row["used"]) >= 0.8 * float(row["max"])
            ]
            return {
                "hours": queries.leads_by_hour(connection, now, 12),
                "parked": queries.parked_count(connection),
                "paused": sorted(paused),
                "closed": sorted(
                    rid
                    for rid, r in config.recipients.items()
                    if not hours.is_open(r.schedule, r.timezone, now)
                ),
                "capped": capped,
            }

    def broker() -> dict[str, tuple[int, int]] | None:
        try:
            return queue_stats(request.app[SETTINGS].broker_url, WORK_QUEUES)
        except Exception as exc:  # the dashboard still shows the rest
            logger.warning("queue depths unavailable: %s", exc)
            return None

    data = await run_db(request.app, load)
    queues = await run_db(request.app, broker)
    peak = max((h["total"] for h in data["hours"]), default=0) or 1
    return _page(request, "dashboard.html", peak=peak, outcomes=OUTCOMES, queues=queues, **data)


async def leads(request: web.Request) -> web.Response:
    query = request.query
    wanted = query.get("id", "").strip()
    if wanted:
        raise web.HTTPFound(f"/leads/{wanted}")
    flow_id, outcome = query.get("flow") or None, query.get("outcome") or None

    def load() -> queries.LeadPage:
        with request.app[FACTORY]() as session:
            return queries.leads(
                session.connection(), flow_id=flow_id, outcome=outcome, before=query.get("before")
            )

    page = await run_db(request.app, load)
    return _page(
        request,
        "leads.html",
        page=page,
        flow=flow_id or "",
        outcome=outcome or "",
        outcomes=OUTCOMES,
    )


async def lead(request: web.Request) -> web.Response:
    lead_id = request.match_info["lead_id"]
    try:
        report = await run_db(request.app, lead_report, request.app[FACTORY], lead_id)
    except NotFound:
        response = _page(request, "missing.html", what=f"lead {lead_id}")
        response.set_status(404)
        return response
    return _page(request, "lead.html", report=report)


async def recipients(request: web.Request) -> web.Response:
    configs: ConfigStore = request.app[CONFIG]

    def load() -> list[dict[str, Any]]:
        now = clock.now()
        with request.app[FACTORY]() as session:
            _, config = configs.latest()
            paused = pausing.paused(session.connection())
            used = caps.report(session.connection(), config, now)
        return [
            {
                "id": rid,
                "name": r.name or rid,
                "kind": r.kind,
                "paused": rid in paused,
                "open": hours.is_open(r.schedule, r.timezone, now),
                "caps": [c for c in used if c["owner_type"] == "recipient" and c["owner"] == rid],
            }
            for rid, r in sorted(config.recipients.items())
        ]

    return _page(request, "recipients.html", recipients=await run_db(request.app, load))


async def returns_page(request: web.Request) -> web.Response:
    def load() -> list[dict[str, Any]]:
        with request.app[FACTORY]() as session:
            return money_returns.listing(session, "requested")

    return _page(request, "returns.html", returns=await run_db(request.app, load))


# --- acting (operators; the same functions as the CLI) -------------------------------------


async def pause(request: web.Request) -> web.StreamResponse:
    return await _switch(request, True)


async def resume(request: web.Request) -> web.StreamResponse:
    return await _switch(request, False)


async def _switch(request: web.Request, value: bool) -> web.StreamResponse:
    person = auth.operator(request)
    recipient_id = request.match_info["recipient_id"]
    _, config = request.app[CONFIG].latest()
    if recipient_id not in config.recipients:
        raise web.HTTPNotFound(text=f"unknown recipient '{recipient_id}'")

    def switch() -> None:
        with transaction(request.app[FACTORY]) as session:
            pausing.set_paused(session, recipient_id, value)

    await run_db(request.app, switch)
    logger.info("%s %s %s", person.name, "paused" if value else "resumed", recipient_id)
    raise web.HTTPSeeOther("/recipients")


async def decide_return(request: web.Request) -> web.StreamResponse:
    person = auth.operator(request)
    return_id, decision = request.match_info["return_id"], request.match_info["decision"]
    form = await request.post()
    reason = str(form.get("reason", "")).strip()
    configs: ConfigStore = request.app[CONFIG]

    def decide() -> None:
        with transaction(request.app[FACTORY]) as session:
            if decision == "approve":
                money_returns.approve(session, configs.get, return_id, clock.now())
            else:
                money_returns.reject(session, return_id, reason or "Rejected", clock.now())

    try:
        await run_db(request.app, decide)
    except LeadflowError as exc:
        raise web.HTTPConflict(text=str(exc)) from None
    logger.info("%s %sd return %s", person.name, decision, return_id)
    raise web.HTTPSeeOther("/returns")


# --- dead letters ---------------------------------------------------------------------------


async def dead_letters(request: web.Request) -> web.Response:
    queue = request.query.get("queue") or None
    recipient = request.query.get("recipient") or None

    def load() -> list[Any]:
        return deadletters.parked_messages(request.app[FACTORY], queue=queue, recipient=recipient)

    letters = await run_db(request.app, load)
    return _page(
        request, "dead.html", letters=letters, queue=queue or "", recipient=recipient or ""
    )


async def act_on_dead_letters(request: web.Request) -> web.StreamResponse:
    """Replay or purge the chosen parked messages (purge only once confirmed)."""
    person = auth.operator(request)
    action = request.match_info["action"]
    form = await request.post()
    chosen = {str(v) for v in form.getall("message_id", [])}
    if action == "purge" and form.get("confirm") != "yes":
        raise web.HTTPBadRequest(text="Tick the box to confirm the purge")
    settings = request.app[SETTINGS]

    def act() -> int:
        factory = request.app[FACTORY]
        letters = [m for m in deadletters.parked_messages(factory) if m.message_id in chosen]
        if action == "replay":
            return deadletters.replay(factory, settings.broker_url, letters, settings.queue_type)
        return deadletters.purge(factory, settings.broker_url, letters, settings.queue_type)

    done = await run_db(request.app, act)
    logger.info("%s: %s %d parked message(s) from the console", person.name, action, done)
    raise web.HTTPSeeOther("/dead")


# --- manual delivery --------------------------------------------------------------------------


async def manual(request: web.Request) -> web.Response:
    configs: ConfigStore = request.app[CONFIG]

    def load() -> list[dict[str, Any]]:
        _, config = configs.latest()
        with request.app[FACTORY]() as session:
            counts = queries.pending_counts(session.connection())
        return [
            {"id": rid, "name": r.name or rid, "pending": counts.get(rid, 0)}
            for rid, r in sorted(config.recipients.items())
            if r.kind == "manual"
        ]

    return _page(request, "manual.html", recipients=await run_db(request.app, load))


async def manual_download(request: web.Request) -> web.StreamResponse:
    """The recipient's pending leads as a file, marked delivered (``leadflow leads
    deliver``), once the operator confirmed."""
    person = auth.operator(request)
    recipient_id = request.match_info["recipient_id"]
    form = await request.post()
    if form.get("confirm") != "yes":
        raise web.HTTPBadRequest(text="Tick the box to confirm the download")
    configs: ConfigStore = request.app[CONFIG]
    _, config = configs.latest()
    recipient = config.recipients.get(recipient_id)
    if recipient is None or recipient.kind != "manual":
        raise web.HTTPNotFound(text=f"no manual recipient '{recipient_id}'")

    def deliver() -> tuple[int, str]:
        out = io.StringIO()
        count = manual_files.deliver(request.app[FACTORY], configs, recipient_id, out)
        return count, out.getvalue()

    count, text = await run_db(request.app, deliver)
    file_format = manual_files.recipient_file(config, recipient_id).format
    logger.info("%s downloaded %d lead(s) of %s", person.name, count, recipient_id)
    stamp = clock.now().strftime("%Y%m%d-%H%M%S")
    return web.Response(
        text=text,
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
    since = _day(request.query.get("since"))
    until = _day(request.query.get("until"))

    def load() -> list[dict[str, Any]]:
        with request.app[FACTORY]() as session:
            return money_reports.report(session.connection(), by, since, until)

    rows = await run_db(request.app, load)
    columns = [by, *money_reports.COLUMNS]
    if request.query.get("format") == "csv":
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows(
            [f"{r[c]:.2f}" if c in money_reports.MONEY else str(r[c]) for c in columns]
            for r in rows
        )
        return web.Response(
            text=out.getvalue(),
            content_type="text/csv",
            headers={"Content-Disposition": f'attachment; filename="report-by-{by}.csv"'},
        )
    peak = max((abs(float(r["profit"])) for r in rows), default=0.0) or 1.0
    return _page(
        request,
        "reports.html",
        rows=rows,
        columns=columns,
        money=money_reports.MONEY,
        by=by,
        bys=money_reports.BY,
        since=request.query.get("since", ""),
        until=request.query.get("until", ""),
        peak=peak,
    )


def _day(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        return datetime.fromisoformat(text).replace(tzinfo=UTC)
    except ValueError:
        raise web.HTTPBadRequest(text=f"not a date: {text!r} (use YYYY-MM-DD)") from None


async def flows(request: web.Request) -> web.Response:
    configs: ConfigStore = request.app[CONFIG]

    def load() -> dict[str, Any]:
        version, config = configs.latest()
        with request.app[FACTORY]() as session:
            counts = queries.today_by_flow(session.connection(), clock.now())
            versions = queries.config_versions(session.connection())
        return {"version": version, "config": config, "counts": counts, "versions": versions}

    data = await run_db(request.app, load)
    return _page(request, "flows.html", **data)


async def config_diff(request: web.Request) -> web.Response:
    """What a configuration version changed from the one before it."""
    configs: ConfigStore = request.app[CONFIG]
    try:
        version = int(request.match_info["version"])
    except ValueError:
        raise web.HTTPNotFound() from None

    def load() -> tuple[str, str]:
        try:
            _, now = configs.source_text(version)
        except LeadflowError:
            raise web.HTTPNotFound(text=f"no configuration version {version}") from None
        before = ""
        if version > 1:
            try:
                _, before = configs.source_text(version - 1)
            except LeadflowError:
                before = ""
        return before, now

    before, now = await run_db(request.app, load)
    diff = difflib.unified_diff(
        before.splitlines(),
        now.splitlines(),
        f"version {version - 1}",
        f"version {version}",
        lineterm="",
    )
    return _page(request, "diff.html", version=version, diff=list(diff))
