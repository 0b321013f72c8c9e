"""``/ping``: a source asks what a lead would be paid before posting it (SPEC section 12).

Parsed, authenticated and answered like ``/submit``. One transaction counts the ping
against its limits, finds an identical ping answered within the flow's ``ping.dedupe``
and reads the gates (nothing claimed); the auction steps' buyers are then pinged at once
(``shared.auction``: a hard deadline, never a queue); a second transaction stores the
ping and its bids. The quote is the best bid less the margin, rounded down to the cent.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import aiohttp
from aiohttp import web
from sqlalchemy import Connection
from sqlalchemy.orm import Session

from services.intake.views import Submission, read_submission
from shared import auction, pings
from shared.answers import negotiate
from shared.auction import Bid
from shared.db.engine import utcnow
from shared.db.grouped import GroupCommit
from shared.db.threads import DatabaseThreads
from shared.flowconfig import LeadflowConfig
from shared.ids import new_id
from shared.leaddata import base_variables, build_fields
from shared.metrics import BIDS, PINGS
from shared.money.pricing import quote, source_cost
from shared.outbound.send import client_session
from shared.web import SETTINGS, answer

logger = logging.getLogger(__name__)

PING_HTTP = web.AppKey("ping_http", aiohttp.ClientSession)
#: The pings this process is answering, by dedupe key: an identical ping arriving
#: meanwhile gets the same answer (and ping_id) without pinging the buyers again; an
#: answer stays here a moment after it is stored (``STORED_PING_KEPT_SECONDS``).
PINGS_IN_FLIGHT = web.AppKey("pings_in_flight", dict[str, "asyncio.Future[dict[str, Any]]"])
#: Connections the intake holds open to buyers at once, over every ping in flight.
PING_CONNECTIONS = 500
#: Database threads of the pings' group commits (one check and one store run at a time).
PING_DB_THREADS = 2
STORED_PING_KEPT_SECONDS = 2.0


@dataclass(frozen=True, slots=True)
class _Limited:
    retry_after: float


@dataclass(frozen=True, slots=True)
class _Asked:
    """A ping to check: its limits, an identical earlier ping, its gates and bidders."""

    config: LeadflowConfig
    flow_id: str
    source_id: str
    dedupe: str
    fields: dict[str, Any]
    variables: dict[str, Any]
    now: datetime


Checked = _Limited | pings.StoredPing | pings.Plan
PING_CHECK = web.AppKey("ping_check", GroupCommit[_Asked, Checked])
PING_STORE = web.AppKey("ping_store", GroupCommit[pings.Answered, None])


async def ping_ctx(app: web.Application) -> AsyncIterator[None]:
    """The client that pings buyers, and the group commits that check and store pings
    (pings arriving together share a transaction; alone, one waits for nobody)."""
    db = DatabaseThreads(app[SETTINGS].database_url, PING_DB_THREADS, "pings")
    app[PING_HTTP] = client_session(PING_CONNECTIONS)
    app[PINGS_IN_FLIGHT] = {}
    check: GroupCommit[_Asked, Checked] = GroupCommit(db, _check_many, linger=0)
    app[PING_CHECK] = check
    app[PING_STORE] = GroupCommit(db, _store_many, linger=0)
    yield
    await app[PING_HTTP].close()
    await db.close()


async def ping(request: web.Request) -> web.Response:
    started = time.monotonic()
    media = negotiate(request.headers.get("Accept"))
    read = await read_submission(request, media)
    if isinstance(read, web.Response):
        return read
    config, flow_id, flow = read.config, read.flow_id, read.flow
    source_id, submitted = read.source_id, read.submitted
    now = utcnow()
    ping_id = new_id()
    fields = build_fields(flow, submitted)
    variables = base_variables(ping_id, flow_id, source_id, now, fields)
    dedupe = pings.dedupe_key(flow_id, source_id, submitted)
    asked = _Asked(config, flow_id, source_id, dedupe, fields, variables, now)
    checked = await request.app[PING_CHECK](asked)
    if isinstance(checked, _Limited):
        return _too_many(checked.retry_after)
    if isinstance(checked, pings.StoredPing):
        PINGS.labels(flow_id, source_id, "repeat").inc()
        logger.info("ping %s answered again (same fields within dedupe)", checked.id)
        return answer(checked.answer(), media)
    in_flight = request.app[PINGS_IN_FLIGHT]
    if flow.ping.dedupe > 0 and dedupe in in_flight:
        first = await asyncio.shield(in_flight[dedupe])
        PINGS.labels(flow_id, source_id, "repeat").inc()
        logger.info("ping %s answered again (an identical one was in flight)", first["ping_id"])
        return answer(first, media)
    answering = _auction_and_store(request.app, read, asked, checked, ping_id, started)
    return answer(await _answer_once(in_flight, dedupe, flow.ping.dedupe, answering), media)


async def _answer_once(
    in_flight: dict[str, asyncio.Future[dict[str, Any]]],
    dedupe: str,
    window: float,
    answering: Awaitable[dict[str, Any]],
) -> dict[str, Any]:
    """A new ping's answer, held under its dedupe key while it is made and a moment after
    it is stored (a check that began before that commit finds it here), so identical
    pings wait for it (``window`` 0: the flow never shares answers)."""
    if window <= 0:
        return await answering
    loop = asyncio.get_running_loop()
    future = in_flight[dedupe] = loop.create_future()
    try:
        answered = await answering
    except BaseException as exc:
        del in_flight[dedupe]
        if isinstance(exc, Exception):
            future.set_exception(exc)  # the identical pings waiting fail as this one did
            future.exception()  # (and none waiting is no "never retrieved" warning)
        else:
            future.cancel()
        raise
    future.set_result(answered)
    loop.call_later(min(window, STORED_PING_KEPT_SECONDS), _forget, in_flight, dedupe, future)
    return answered


def _forget(
    in_flight: dict[str, asyncio.Future[dict[str, Any]]],
    dedupe: str,
    answering: asyncio.Future[dict[str, Any]],
) -> None:
    if in_flight.get(dedupe) is answering:
        del in_flight[dedupe]


async def _auction_and_store(
    app: web.Application,
    read: Submission,
    asked: _Asked,
    checked: pings.Plan,
    ping_id: str,
    started: float,
) -> dict[str, Any]:
    """A new ping's answer: its auctions' bidders pinged, its quote, all stored."""
    version, config, flow_id, flow = read.version, read.config, read.flow_id, read.flow
    source_id, submitted = read.source_id, read.submitted
    variables, now = asked.variables, asked.now
    bids: list[tuple[int, Bid]] = []
    outcome, reason, price = checked.outcome, checked.failure, Decimal(0)
    if checked.failure is None:
        source = flow.sources[source_id]
        best = None
        # every auction's bidders at once (each within its deadline from the ping's
        # arrival): the post goes to these bids and never pings again; the quote is the
        # best bid of the first auction that has one (the one the lead would be sold in)
        collected = await asyncio.gather(
            *(
                auction.collect(
                    app[PING_HTTP],
                    step,
                    config,
                    bidders,
                    variables,
                    list(flow.fields),
                    ping_id,
                    started=started,
                )
                for _, step, bidders in checked.auctions
            )
        )
        for (index, step, _), step_bids in zip(checked.auctions, collected, strict=True):
            bids += [(index, bid) for bid in step_bids]
            ranked = auction.rank(step_bids, step.floor)
            if best is None and ranked:
                best = ranked[0]
        if not checked.has_auction:
            # the quote is the source's cost, held to min_price as a bid's quote is
            cost = source_cost(source.cost, source.cost_rules, variables)
            quoted = quote(cost, None, source.min_price) if cost is not None else None
            if quoted is not None:
                outcome, reason, price = "success", None, quoted
        elif best is not None:
            quoted = quote(best.value, auction.margin_of(flow, source), source.min_price)
            if quoted is not None:
                outcome, reason, price = "success", None, quoted
        if outcome != "success":
            reason = auction.NO_BID_REASON
    stored = pings.StoredPing(
        id=ping_id,
        flow_id=flow_id,
        source_id=source_id,
        config_version=version,
        fields=submitted,
        outcome=outcome,
        reason=reason,
        price=price,
        created_at=now,
        expires_at=now + timedelta(seconds=flow.ping.ttl),
        lead_id=None,
    )
    ms = int((time.monotonic() - started) * 1000)
    await app[PING_STORE](pings.Answered(stored, asked.dedupe, ms, bids))
    PINGS.labels(flow_id, source_id, outcome).inc()
    for _, bid in bids:
        BIDS.labels(bid.recipient_id, bid.outcome).inc()
    logger.info(
        "ping %s for %s/%s: %s %s (%d bids, %d ms)",
        ping_id,
        flow_id,
        source_id,
        outcome,
        reason or price,
        sum(1 for _, b in bids if b.outcome == auction.BID),
        ms,
    )
    return stored.answer()


def _check_many(session: Session, asked: Sequence[_Asked]) -> list[Checked]:
    """Each ping counted against its limits; the earlier identical ping; or its plan.
    One transaction for the pings that arrived together (the paused set read once)."""
    connection = session.connection()
    gates = pings.ReadGates(connection, asked[0].now)
    return [_check(connection, gates, one) for one in asked]


def _check(connection: Connection, gates: pings.ReadGates, asked: _Asked) -> Checked:
    flow = asked.config.flows[asked.flow_id]
    retry_after = pings.take_limits(connection, asked.flow_id, flow, asked.source_id, asked.now)
    if retry_after is not None:
        return _Limited(retry_after)
    since = asked.now - timedelta(seconds=flow.ping.dedupe)
    earlier = pings.recent(connection, asked.dedupe, since)
    if earlier is not None:
        return earlier
    return pings.plan(
        asked.config, asked.flow_id, asked.source_id, asked.fields, asked.variables, gates
    )


def _store_many(session: Session, answered: Sequence[pings.Answered]) -> list[None]:
    pings.store(session.connection(), answered)
    return [None] * len(answered)


def _too_many(retry_after: float) -> web.Response:
    seconds = max(1, int(retry_after + 0.999))
    response = web.json_response(
        {"status": 429, "message": "Too Many Requests", "retry_after": seconds * 1000},
        status=429,
    )
    response.headers["Retry-After"] = str(seconds)
    return response
