"""The console's pages: thin views over the same functions the CLI calls
(``shared.leadview``, ``shared.gates``, ``shared.money``); the console adds pages, never
logic."""

from __future__ import annotations

import logging
from typing import Any

import aiohttp_jinja2
from aiohttp import web

from services.console import auth, queries
from shared import clock, users
from shared.configstore import ConfigStore
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
WORK_QUEUES = (ROUTER, HTTP_DELIVERY, EMAIL_DELIVERY, FEEDBACK)


def page(request: web.Request, template: str, **context: Any) -> web.Response:
    person = request.get(auth.PERSON)
    session = request.get(auth.SESSION)
    return aiohttp_jinja2.render_template(
        template,
        request,
        {"person": person, "csrf": session.csrf if session else "", **context},
    )


# --- signing in -------------------------------------------------------------------------


async def login_form(request: web.Request) -> web.Response:
    return page(request, "login.html", failed=False)


async def login(request: web.Request) -> web.StreamResponse:
    address = request.remote or "?"
    brake = request.app[auth.BRAKE]
    wait = brake.wait_seconds(address)
    if wait > 0:
        response = page(request, "login.html", failed=True, braked=True)
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
        response = page(request, "login.html", failed=True, braked=False)
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
    return page(request, "dashboard.html", peak=peak, outcomes=OUTCOMES, queues=queues, **data)


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

    found = await run_db(request.app, load)
    return page(
        request,
        "leads.html",
        page=found,
        flow=flow_id or "",
        outcome=outcome or "",
        outcomes=OUTCOMES,
    )


async def lead(request: web.Request) -> web.Response:
    lead_id = request.match_info["lead_id"]
    try:
        report = await run_db(request.app, lead_report, request.app[FACTORY], lead_id)
    except NotFound:
        response = page(request, "missing.html", what=f"lead {lead_id}")
        response.set_status(404)
        return response
    return page(request, "lead.html", report=report)


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

    return page(request, "recipients.html", recipients=await run_db(request.app, load))


async def returns_page(request: web.Request) -> web.Response:
    def load() -> list[dict[str, Any]]:
        with request.app[FACTORY]() as session:
            return money_returns.listing(session, "requested")

    return page(request, "returns.html", returns=await run_db(request.app, load))


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
