"""The console's pages: thin views over the same functions the CLI calls
(``shared.leadview``, ``shared.gates``, ``shared.money``); the console adds pages, never
logic."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import date
from typing import Any, TypeVar
from urllib.parse import quote

import aiohttp_jinja2
from aiohttp import web
from sqlalchemy.orm import Session

from services.console import auth, queries
from shared import clock, leaddata, users
from shared.db.engine import transaction
from shared.errors import LeadflowError, NotFound
from shared.gates import caps, hours, pausing
from shared.leadview import lead_report
from shared.messaging import EMAIL_DELIVERY, FEEDBACK, HTTP_DELIVERY, ROUTER
from shared.messaging.admin import queue_stats
from shared.money import returns as money_returns
from shared.web import CONFIG, FACTORY, SETTINGS, run_db

logger = logging.getLogger(__name__)
OUTCOMES = ("success", "failure", "error", "queued")
CHART_HOURS = 3  # the dashboard's chart: leads a minute over these last hours
SEARCHED = ("email", "phone", "flow", "source", "outcome", "day")
WORK_QUEUES = (ROUTER, HTTP_DELIVERY, EMAIL_DELIVERY, FEEDBACK)
T = TypeVar("T")


def page(request: web.Request, template: str, *, status: int = 200, **context: Any) -> web.Response:
    person = request.get(auth.PERSON)
    session = request.get(auth.SESSION)
    return aiohttp_jinja2.render_template(
        template,
        request,
        {"person": person, "csrf": session.csrf if session else "", **context},
        status=status,
    )


async def read(app: web.Application, query: Callable[[Session], T]) -> T:
    """What ``query`` reads in a session of its own, on the database threads."""

    def load() -> T:
        with app[FACTORY]() as session:
            return query(session)

    return await run_db(app, load)


# --- signing in -------------------------------------------------------------------------


async def login_form(request: web.Request) -> web.Response:
    return _login_page(request, auth.local_target(request.query.get("next")))


def _login_page(
    request: web.Request, target: str, *, status: int = 200, **notice: bool
) -> web.Response:
    """The sign-in form, saying why it is shown again when it is (``notice``: ``failed``,
    ``braked`` or ``expired`` true)."""
    token = auth.login_token(request)
    response = page(request, "login.html", status=status, target=target, csrf=token, **notice)
    auth.set_login_cookie(request, response, token)
    return response


async def login(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    target = auth.local_target(str(form.get("next", "/")))
    if not auth.login_token_ok(request, form.get(auth.CSRF_FIELD)):
        # an old page, or another site's form: a fresh form, and nobody signed in
        return _login_page(request, target, expired=True, status=403)
    name = str(form.get("name", form.get("username", "")))  # a script may say username
    password = str(form.get("password", ""))
    brake = request.app[auth.BRAKE]
    wait = brake.wait_seconds(name)
    if wait > 0:
        logger.info("console login for %r braked (%s)", name[:64], request.remote)
        response = _login_page(request, target, failed=True, braked=True, status=429)
        response.headers["Retry-After"] = str(int(wait) + 1)
        return response

    person = await read(request.app, lambda session: users.check(session, name, password))
    if person is None:
        brake.failed(name)
        logger.info("failed console login for %r from %s", name[:64], request.remote)
        return _login_page(request, target, failed=True, status=401)
    brake.succeeded(name)
    cookie, _ = request.app[auth.SIGNER].issue(person.id)
    response = web.HTTPSeeOther(target)
    auth.set_cookie(request, response, cookie)
    logger.info("%s signed in to the console", person.name)
    raise response


async def logout(request: web.Request) -> web.StreamResponse:
    response = web.HTTPFound("/login")
    response.del_cookie(auth.COOKIE, path="/")
    raise response


# --- reading ----------------------------------------------------------------------------


async def dashboard(request: web.Request) -> web.Response:
    def load(session: Session) -> dict[str, Any]:
        now = clock.now()
        connection = session.connection()
        _, config = request.app[CONFIG].latest()
        capped = [
            row
            for row in caps.report(connection, config, now)
            if row["max"] and float(row["used"]) >= 0.8 * float(row["max"])
        ]
        return {
            "minutes": queries.leads_by_minute(connection, now, CHART_HOURS),
            "parked": queries.parked_count(connection),
            "paused": sorted(pausing.paused(connection)),
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

    data = await read(request.app, load)
    queues = await run_db(request.app, broker)
    peak = max((m["total"] for m in data["minutes"]), default=0) or 1
    return page(
        request,
        "dashboard.html",
        peak=peak,
        outcomes=OUTCOMES,
        queues=queues,
        chart_hours=CHART_HOURS,
        **data,
    )


async def leads(request: web.Request) -> web.Response:
    """Leads found by id, e-mail, phone, flow, source, outcome and day. A search by e-mail
    or phone is sent by POST (the form's default), so no lead data reaches a URL; the
    other criteria also work as a link (``/leads?flow=auto&outcome=failure``)."""
    posted = request.method == "POST"
    asked = await request.post() if posted else request.query
    wanted = str(asked.get("id", "")).strip()
    if wanted:
        raise web.HTTPSeeOther(f"/leads/{quote(wanted, safe='')}")
    text = {name: str(asked.get(name, "")).strip() for name in SEARCHED}
    try:
        day = date.fromisoformat(text["day"]) if text["day"] else None
    except ValueError:
        day = None
    search = queries.LeadSearch(
        flow_id=text["flow"] or None,
        source_id=text["source"] or None,
        outcome=text["outcome"] if text["outcome"] in OUTCOMES else None,
        email=leaddata.searched_contact("email", text["email"]) if posted else None,
        phone=leaddata.searched_contact("phone", text["phone"]) if posted else None,
        day=day,
    )
    before = str(asked.get("before", "")) or None
    found = await read(
        request.app, lambda session: queries.leads(session.connection(), search, before)
    )
    return page(
        request,
        "leads.html",
        page=found,
        asked=text,
        by_contact=bool(search.email or search.phone),
        bad_day=bool(text["day"]) and day is None,
        outcomes=OUTCOMES,
    )


async def lead(request: web.Request) -> web.Response:
    lead_id = request.match_info["lead_id"]
    try:
        report = await run_db(request.app, lead_report, request.app[FACTORY], lead_id)
    except NotFound:
        return page(request, "missing.html", status=404, what=f"lead {lead_id}")
    return page(request, "lead.html", report=report)


async def recipients(request: web.Request) -> web.Response:
    def load(session: Session) -> list[dict[str, Any]]:
        now = clock.now()
        _, config = request.app[CONFIG].latest()
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

    return page(request, "recipients.html", recipients=await read(request.app, load))


async def returns_page(request: web.Request) -> web.Response:
    before = request.query.get("before") or None
    waiting = await read(
        request.app,
        lambda session: money_returns.listing(
            session, "requested", before=before, limit=queries.PAGE + 1
        ),
    )
    waiting, older = queries.first_page(waiting, lambda row: row["id"])
    return page(request, "returns.html", returns=waiting, older=older)


# --- acting (operators; the same functions as the CLI) -------------------------------------


async def switch_recipient(request: web.Request) -> web.StreamResponse:
    """Pause or resume a recipient."""
    person = auth.operator(request)
    recipient_id, action = request.match_info["recipient_id"], request.match_info["action"]
    _, config = request.app[CONFIG].latest()
    if recipient_id not in config.recipients:
        raise web.HTTPNotFound(text=f"unknown recipient '{recipient_id}'")

    def switch() -> None:
        with transaction(request.app[FACTORY]) as session:
            pausing.set_paused(session, recipient_id, action == "pause")

    await run_db(request.app, switch)
    logger.info("%s %sd %s", person.name, action, recipient_id)
    raise web.HTTPSeeOther("/recipients")


async def decide_return(request: web.Request) -> web.StreamResponse:
    person = auth.operator(request)
    return_id, decision = request.match_info["return_id"], request.match_info["decision"]
    form = await request.post()
    reason = str(form.get("reason", "")).strip()
    if form.get("confirm") != "yes":  # it cannot be undone: asked first
        return page(
            request,
            "confirm.html",
            title=f"{decision.capitalize()} a return",
            question=(
                f"Approve the return {return_id}? The delivery becomes returned, its revenue "
                "is reversed and the return is forwarded to the lead's source."
                if decision == "approve"
                else f"Reject the return {return_id}"
                f"{f' ({reason})' if reason else ''}? The delivery stays sold."
            ),
            action=f"/returns/{quote(return_id, safe='')}/{decision}",
            back="/returns",
            fields={"reason": reason},
        )
    configs = request.app[CONFIG]

    def decide() -> None:
        with transaction(request.app[FACTORY]) as session:
            if decision == "approve":
                money_returns.approve(session, configs.get, return_id, clock.now())
            else:
                money_returns.reject(session, return_id, reason or "Rejected", clock.now())

    try:
        await run_db(request.app, decide)
    except NotFound as exc:
        raise web.HTTPNotFound(text=str(exc)) from None
    except LeadflowError as exc:  # decided already
        raise web.HTTPConflict(text=str(exc)) from None
    logger.info("%s %sd return %s", person.name, decision, return_id)
    raise web.HTTPSeeOther("/returns")
