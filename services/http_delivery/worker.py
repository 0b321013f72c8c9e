"""The ``http_delivery`` queue: send a lead to a recipient, read its answer, report the step.

Handlers are coroutines on the worker's event loop (``shared.messaging.runtime``), so one
process holds hundreds of slow requests at once. The claims of the messages in hand are
taken together in one transaction, and their answers recorded together in another
(``shared.db.grouped``); the request itself is awaited on the loop. The transaction that
records an answer also moves the lead on to its next step (``shared.routing``), so the
step's result never makes a trip through the router's queue.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from decimal import Decimal
from functools import partial

import aiohttp
from sqlalchemy.orm import Session

from services.http_delivery import auctions, records
from shared import auction, deliveries, routing
from shared.configstore import ConfigStore
from shared.db.engine import utcnow
from shared.db.grouped import GroupCommit
from shared.db.outages import record_patiently_async
from shared.db.threads import DatabaseThreads
from shared.errors import TransientError
from shared.messaging import (
    AsyncPublisher,
    DeliverHttp,
    Message,
    RunAuction,
    StepCompleted,
    holder,
)
from shared.metrics import ATTEMPT_SECONDS, DELIVERIES
from shared.money.pricing import revenue
from shared.outbound.request import build_request
from shared.outbound.response import interpret
from shared.outbound.send import send, transient_reason
from shared.redact import scrub, scrub_value

QUEUE = "http_delivery"
logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Deps:
    configs: ConfigStore
    publisher: AsyncPublisher
    http: aiohttp.ClientSession
    db: DatabaseThreads
    claim: GroupCommit[records.Wanted, records.Job | None]
    record: GroupCommit[deliveries.Answered, routing.Outbound | None]
    route: GroupCommit[routing.RouterMessage, routing.Outbound]
    patience: float  # how long an answer is recorded through a database outage

    @classmethod
    def of(
        cls,
        configs: ConfigStore,
        publisher: AsyncPublisher,
        http: aiohttp.ClientSession,
        db: DatabaseThreads,
        patience: float,
    ) -> Deps:
        return cls(
            configs,
            publisher,
            http,
            db,
            claim=GroupCommit(db, partial(records.claim_many, configs, patience)),
            record=GroupCommit(db, partial(records.record_and_route, configs.get)),
            route=GroupCommit(db, partial(routing.route_with, configs.get)),
            patience=patience,
        )


async def handle(message: Message, deps: Deps) -> None:
    if isinstance(message, RunAuction):
        await _run_auction(message, deps)
        return
    assert isinstance(message, DeliverHttp)
    job = await deps.claim(records.Wanted(message, holder()))
    if job is not None:
        outbound = await _attempt(job, deps)
    else:
        # Answered already (a copy of the message): the lead moved on then; its next
        # hand-off is published again if it may have been lost (routing is idempotent).
        step = StepCompleted(lead_id=message.lead_id, event_id=message.event_id)
        outbound = await deps.route(step)
    await routing.publish_outbound(outbound, deps.publisher)


async def _run_auction(message: RunAuction, deps: Deps) -> None:
    """Ping the bidders of a lead's auction step, store their bids, report the step."""
    asking = await deps.db.transaction(auctions.prepare, deps.configs, message)
    if asking is not None:
        bids = await auction.collect(
            deps.http,
            asking.auction,
            asking.config,
            asking.bidders,
            asking.variables,
            asking.flow_fields,
            message.event_id,
        )
        await deps.db.transaction(auctions.record, asking, bids)
        logger.info(
            "auction: %d of %d bidders bid",
            sum(1 for bid in bids if bid.outcome == auction.BID),
            len(bids),
            extra={"lead_id": message.lead_id, "event_id": message.event_id},
        )
    outbound = await deps.route(StepCompleted(lead_id=message.lead_id, event_id=message.event_id))
    await routing.publish_outbound(outbound, deps.publisher)


async def _attempt(job: records.Job, deps: Deps) -> routing.Outbound:
    at = utcnow()
    request = build_request(job.target, job.variables, job.flow_fields, job.event_id)
    answer = await send(deps.http, request, job.target.timeout)
    ATTEMPT_SECONDS.labels(job.recipient_id).observe(answer.ms / 1000)
    ids = {"lead_id": job.lead_id, "event_id": job.event_id}
    transient = transient_reason(answer, job.target.retry.on_status)
    attempt = deliveries.Attempt(
        at=at,
        ms=answer.ms,
        status=answer.status,
        error=transient or answer.error,
        excerpt=answer.excerpt(deliveries.EXCERPT_CHARS),
    )
    if transient is None and answer.status is None:
        # a request that can never be answered (a redirect loop, a bad URL): the step is
        # an error at once, without retries
        failed = deliveries.Completion(
            "error", answer.error or "Request failed", Decimal(0), None, job.started_at
        )
        outbound = await deps.record(deliveries.Answered(job.claimed, attempt, failed))
        assert outbound is not None
        DELIVERIES.labels(job.recipient_id, "error").inc()
        logger.warning("delivery to %s failed: %s", job.recipient_id, answer.error, extra=ids)
        return outbound
    if transient is not None and job.once:
        # an auction's post is never retried: the next bid is posted at once
        failed = deliveries.Completion("error", transient, Decimal(0), None, job.started_at)
        outbound = await deps.record(deliveries.Answered(job.claimed, attempt, failed))
        assert outbound is not None
        DELIVERIES.labels(job.recipient_id, "error").inc()
        logger.info("auction post to %s failed: %s", job.recipient_id, transient, extra=ids)
        return outbound
    if transient is not None:
        await deps.record(deliveries.Answered(job.claimed, attempt, None))
        logger.info(
            "attempt %d to %s failed: %s", job.attempt, job.recipient_id, transient, extra=ids
        )
        raise TransientError(transient, job.target.retry.schedule)
    assert answer.status is not None
    result = interpret(answer.status, answer.content_type, answer.body, job.target.response)
    if answer.secrets:  # a recipient echoing the credentials back
        result = replace(
            result,
            reason=scrub(result.reason, answer.secrets) if result.reason else None,
            appended=scrub_value(result.appended, answer.secrets),
        )
    # The recipient has answered: a short database outage must not get the lead sent again.
    price = result.price
    if result.outcome == "success":
        # the answer's (an answered 0 too), else the recipient's
        price = revenue(result.price if result.priced else None, job.price)
    completion = deliveries.Completion(
        result.outcome, result.reason, price, result.appended, job.started_at
    )
    outbound = await record_patiently_async(
        lambda: deps.record(deliveries.Answered(job.claimed, attempt, completion)),
        ids=ids,
        patience=deps.patience,
    )
    assert outbound is not None
    DELIVERIES.labels(job.recipient_id, result.outcome).inc()
    logger.info(
        "delivered to %s: %s%s (HTTP %s, %d ms)",
        job.recipient_id,
        result.outcome,
        f" ({result.reason})" if result.reason else "",
        answer.status,
        answer.ms,
        extra=ids,
    )
    return outbound


def _give_up(session: Session, message: DeliverHttp, reason: str) -> None:
    deliveries.complete(
        session, message.event_id, deliveries.Completion("error", reason, dead=True)
    )


async def on_exhausted(message: Message, reason: str, deps: Deps) -> None:
    """The retry schedule is used up: the step is an error and the flow goes on (an
    auction whose bids could not be asked for: no bids, and it ends ``no buyer``)."""
    if isinstance(message, RunAuction):
        await deps.db.transaction(auctions.give_up, message.event_id)
        logger.warning(
            "auction gave up asking for bids: %s",
            reason,
            extra={"lead_id": message.lead_id, "event_id": message.event_id},
        )
        step = StepCompleted(lead_id=message.lead_id, event_id=message.event_id)
        await routing.publish_outbound(await deps.route(step), deps.publisher)
        return
    assert isinstance(message, DeliverHttp)
    final_reason = "Server error" if reason.startswith("Server error") else reason
    await deps.db.transaction(_give_up, message, final_reason)
    DELIVERIES.labels(message.recipient_id, "error").inc()
    logger.warning(
        "delivery to %s gave up: %s",
        message.recipient_id,
        reason,
        extra={"lead_id": message.lead_id, "event_id": message.event_id},
    )
    await deps.publisher.publish(StepCompleted(lead_id=message.lead_id, event_id=message.event_id))
