"""Thin views: read the request, call the domain, answer in the client's format."""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
import logging
import time
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from aiohttp import web

from services.intake.leads import NewLead, new_lead
from services.intake.state import LATEST_CONFIG, WAITERS, WRITER
from services.intake.store import Written
from shared import pings, resubmits
from shared.answers import negotiate
from shared.db.engine import utcnow
from shared.db.models import Lead
from shared.flowconfig import Flow, LeadflowConfig, Source
from shared.formats.bodies import merge_over, nest_pairs, parse_body, without_nul
from shared.metrics import INTAKE_SECONDS, LEADS_RECEIVED
from shared.web import CLIENT, CONFIG, EXECUTOR, FACTORY, answer, run_db

logger = logging.getLogger(__name__)

ALLOWED = "GET, POST"


def _authorized(request: web.Request, source: Source) -> bool:
    if not source.api_key:
        return True
    header = request.headers.get("Authorization", "")
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        return False
    try:
        user, _, password = base64.b64decode(encoded.strip()).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return False
    # As LeadConduit: the user is ``API`` (any case), the password the source's key.
    key_matches = hmac.compare_digest(password.encode(), source.api_key.encode())
    return key_matches and user.upper() == "API"


def unauthorized(media: str) -> web.Response:
    response = answer({"outcome": "error", "reason": "Invalid API key"}, media, status=401)
    response.headers["WWW-Authenticate"] = 'Basic realm="leadflow"'
    return response


def lead_answer(
    lead_id: str, outcome: str | None, reason: str | None, price: Decimal
) -> dict[str, Any]:
    return {
        "outcome": outcome or "queued",
        "reason": reason,
        "lead": {"id": lead_id},
        "price": price,
    }


async def submit(request: web.Request) -> web.Response:
    started = time.monotonic()
    try:
        return await _submit(request)
    finally:
        INTAKE_SECONDS.observe(time.monotonic() - started)


@dataclass(frozen=True, slots=True)
class Submission:
    """A request to ``/submit`` or ``/ping``: the configuration it is read under, its flow
    and source, its body and its fields (body and query)."""

    version: int
    config: LeadflowConfig
    flow_id: str
    flow: Flow
    source_id: str
    body: bytes
    submitted: dict[str, Any]


async def read_submission(request: web.Request, media: str) -> Submission | web.Response:
    """The submission, or the error answer (method, unknown flow or source, credentials;
    a body that does not parse raises ``BodyError``, answered by the error middleware)."""
    if request.method not in ("GET", "POST"):
        response = answer(
            {"outcome": "error", "reason": f"Method {request.method} not allowed"},
            media,
            status=405,
        )
        response.headers["Allow"] = ALLOWED
        return response
    flow_id, source_id = request.match_info["flow_id"], request.match_info["source_id"]
    version, config = await request.app[LATEST_CONFIG].get()
    flow = config.flows.get(flow_id)
    if flow is None:
        return answer(
            {"outcome": "error", "reason": f"Unknown flow '{flow_id}'"}, media, status=404
        )
    source = flow.sources.get(source_id)
    if source is None:
        return answer(
            {"outcome": "error", "reason": f"Unknown source '{source_id}'"}, media, status=404
        )
    if not _authorized(request, source):
        return unauthorized(media)
    body = await request.read() if request.method == "POST" else b""
    submitted = parse_body(request.headers.get("Content-Type"), body, request.charset)
    submitted = merge_over(submitted, without_nul(nest_pairs(request.query.items())))
    return Submission(version, config, flow_id, flow, source_id, body, submitted)


async def _submit(request: web.Request) -> web.Response:
    media = negotiate(request.headers.get("Accept"))
    read = await read_submission(request, media)
    if isinstance(read, web.Response):
        return read
    version, flow_id, flow, source_id = read.version, read.flow_id, read.flow, read.source_id
    body, submitted = read.body, read.submitted
    refused, posted = None, None
    if "ping_id" in submitted:  # the post of a ping: its fields, its quote
        ping_ref = submitted.pop("ping_id")
        posted = await run_db(request.app, _load_ping, request.app, str(ping_ref))
        refused = pings.refusal(posted, flow_id, source_id, utcnow())
        if posted is not None and refused is None:
            submitted = merge_over(submitted, posted.fields)
    after_flow = flow.response.mode == "after_flow"
    created = new_lead(
        config_version=version,
        flow_id=flow_id,
        flow=flow,
        source_id=source_id,
        submitted=submitted,
        received_at=utcnow(),
        reply_to=request.app[CLIENT].reply_queue if after_flow else None,
        keys=resubmits.keys_of(
            flow_id,
            source_id,
            content_type=request.headers.get("Content-Type", ""),
            query=request.query_string,
            body=body,
            idempotency_key=request.headers.get("Idempotency-Key"),
            window=flow.duplicates.resubmit_window,
        ),
    )
    if refused is not None:
        created.refuse(refused)
    elif posted is not None and created.enters_flow:
        created.lead_row.update(ping_id=posted.id, cost=posted.price)
    return answer(await _store(request.app, created, flow), media, status=201)


def _load_ping(app: web.Application, ping_id: str) -> pings.StoredPing | None:
    with app[FACTORY]() as session:
        return pings.load(session.connection(), ping_id)


async def _store(app: web.Application, created: NewLead, flow: Flow) -> dict[str, Any]:
    """Store the lead and hand it to the router; the answer (after the flow, if asked)."""
    lead_id = created.lead_id
    waiter: asyncio.Future[dict[str, Any]] | None = None
    if created.enters_flow and flow.response.mode == "after_flow":
        waiter = asyncio.get_running_loop().create_future()
        app[WAITERS][lead_id] = waiter
    try:
        written = await app[WRITER].write(created)
        if written.resubmission:
            logger.info(
                "resubmission answered with its first lead",
                extra={"lead_id": written.lead_id},
            )
            return await current_answer(app, written.lead_id)
        flow_id, source_id = created.lead_row["flow_id"], created.lead_row["source_id"]
        logger.info(
            "lead received for %s/%s: %s",
            flow_id,
            source_id,
            created.outcome or "in flow",
            extra={"lead_id": lead_id, "event_id": created.event_id},
        )
        if not created.enters_flow:
            reply = lead_answer(lead_id, created.outcome, created.reason, Decimal(0))
        else:
            reply = _priced(await _flow_answer(app, lead_id, waiter, written, flow), created.cost)
        LEADS_RECEIVED.labels(flow_id, source_id, reply["outcome"]).inc()  # as answered
        return reply
    finally:
        if waiter is not None:
            app[WAITERS].pop(lead_id, None)


async def _flow_answer(
    app: web.Application,
    lead_id: str,
    waiter: asyncio.Future[dict[str, Any]] | None,
    written: Written,
    flow: Flow,
) -> dict[str, Any]:
    if waiter is None:
        return lead_answer(lead_id, "queued", None, Decimal(0))
    if written.reply is not None:  # the flow ended in intake's own first pass
        reply = written.reply
        return lead_answer(lead_id, reply.outcome, reply.reason, reply.price)
    try:
        return await asyncio.wait_for(waiter, timeout=flow.response.timeout)
    except TimeoutError:
        return await current_answer(app, lead_id)


def _priced(answered: dict[str, Any], cost: Decimal | None) -> dict[str, Any]:
    """With a cost configured, the answer's price is what the source is paid."""
    return answered if cost is None else {**answered, "price": cost}


async def current_answer(app: web.Application, lead_id: str) -> dict[str, Any]:
    def load() -> dict[str, Any]:
        with app[FACTORY]() as session:
            lead = session.get(Lead, lead_id)
            if lead is None:
                return lead_answer(lead_id, "queued", None, Decimal(0))
            if lead.state != "done":  # as GET /leads/{id} answers it: the cost, when set
                return _priced(lead_answer(lead_id, "queued", None, Decimal(0)), lead.cost)
            return _priced(lead_answer(lead_id, lead.outcome, lead.reason, lead.price), lead.cost)

    return await asyncio.get_running_loop().run_in_executor(app[EXECUTOR], load)


async def show_lead(request: web.Request) -> web.Response:
    media = negotiate(request.headers.get("Accept"))
    lead_id = request.match_info["lead_id"]

    def load() -> tuple[Lead | None, Source | None]:
        with request.app[FACTORY]() as session:
            lead = session.get(Lead, lead_id)
        if lead is None:
            return None, None
        config = request.app[CONFIG].get(lead.config_version)
        flow = config.flows.get(lead.flow_id)
        return lead, flow.sources.get(lead.source_id) if flow else None

    lead, source = await run_db(request.app, load)
    if lead is None:
        return answer(
            {"outcome": "error", "reason": f"Unknown lead '{lead_id}'"}, media, status=404
        )
    if source is not None and not _authorized(request, source):
        return unauthorized(media)
    outcome = lead.outcome if lead.state == "done" else "queued"
    return answer(_priced(lead_answer(lead.id, outcome, lead.reason, lead.price), lead.cost), media)
