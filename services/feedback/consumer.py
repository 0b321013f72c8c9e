"""The ``feedback`` queue: forward accepted feedback to the lead's source, record the answer."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import aiohttp
from sqlalchemy.orm import Session

from services.feedback import forward
from shared.configstore import ConfigStore
from shared.db.engine import utcnow
from shared.db.threads import DatabaseThreads
from shared.errors import TransientError
from shared.messaging import FEEDBACK, FeedbackAccepted, Message
from shared.outbound.send import send, transient_reason

QUEUE = FEEDBACK
logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Deps:
    configs: ConfigStore
    http: aiohttp.ClientSession
    db: DatabaseThreads


async def handle(message: Message, deps: Deps) -> None:
    assert isinstance(message, FeedbackAccepted)
    ids = {"lead_id": message.lead_id, "event_id": message.event_id}
    job = await deps.db.transaction(forward.claim_job, deps.configs, message)
    if isinstance(job, forward.Skipped):
        logger.info(
            "feedback %s not forwarded: %s", message.feedback_event_id, job.reason, extra=ids
        )
        return
    at = utcnow()
    try:
        answer = await send(deps.http, job.request, forward.TIMEOUT)
        transient = transient_reason(answer, job.target.retry.on_status)
        if transient is not None:
            raise TransientError(transient, job.target.retry.schedule)
    except Exception:
        # no answer to record: the claim is given back for the retry
        await deps.db.transaction(forward.release, job)
        raise
    outcome, reason = forward.outcome_of(answer)
    await deps.db.transaction(
        forward.record_sent,
        job,
        at=at,
        outcome=outcome,
        reason=reason,
        status=answer.status,
        ms=answer.ms,
    )
    logger.info(
        "%s forwarded to source %s: %s (HTTP %s, %d ms)",
        job.kind,
        job.source_id,
        outcome,
        answer.status,
        answer.ms,
        extra=ids,
    )


def _record_given_up(
    session: Session, configs: ConfigStore, message: FeedbackAccepted, reason: str
) -> None:
    job = forward.load_job(session, configs, message)
    if isinstance(job, forward.ForwardJob):
        forward.record_sent(
            session, job, at=utcnow(), outcome="error", reason=reason, status=None, ms=0
        )


async def on_exhausted(message: Message, reason: str, deps: Deps) -> None:
    """The retry schedule is used up: the feedback-sent event records the error."""
    assert isinstance(message, FeedbackAccepted)
    await deps.db.transaction(_record_given_up, deps.configs, message, reason)
    logger.warning(
        "forwarding feedback %s gave up: %s",
        message.feedback_event_id,
        reason,
        extra={"lead_id": message.lead_id, "event_id": message.event_id},
    )
