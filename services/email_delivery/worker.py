"""The ``email_delivery`` queue: email one lead (real-time) or one batch, then record it.

A server's 4xx, a refused connection or a timeout is retried through the retry tiers
(the recipient's ``retry.schedule``); a 5xx gives up at once. Giving up, either way,
goes through ``on_exhausted``: the delivery (or the batch and its leads) becomes
``error``, a real-time step completes with outcome ``error`` and the flow goes on, and
the message is parked in ``email_delivery.XQ``.

A message the server took for some recipients but refused for others is delivered; the
refused addresses are logged as a warning and kept (as the attempt's error, or as the
batch's reason in ``leadflow batches list``).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from services.email_delivery import batches, compose, records
from services.email_delivery.mailer import Mailer, SendFailed
from shared import deliveries
from shared.configstore import ConfigStore
from shared.db.engine import SessionFactory, transaction, utcnow
from shared.db.outages import record_patiently
from shared.errors import PermanentError, TransientError
from shared.flowconfig import EmailTarget
from shared.messaging import DeliverEmail, Message, Publisher, StepCompleted, holder
from shared.metrics import ATTEMPT_SECONDS, DELIVERIES
from shared.money.pricing import revenue

QUEUE = "email_delivery"
logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Deps:
    sessions: SessionFactory
    configs: ConfigStore
    publisher: Publisher
    mailer: Mailer
    patience: float  # how long what the server took is recorded through a database outage


def handle(message: Message, deps: Deps) -> None:
    assert isinstance(message, DeliverEmail)
    if message.batch_id is not None:
        _send_batch(message.batch_id, deps)
        return
    with transaction(deps.sessions) as session:
        job = records.claim(session, deps.configs, message, holder=holder(), margin=deps.patience)
    if not job.final:
        _send_lead(job, deps)
    deps.publisher.publish(StepCompleted(lead_id=job.lead_id, event_id=job.event_id))


def _send_lead(job: records.LeadJob, deps: Deps) -> None:
    ids = {"lead_id": job.lead_id, "event_id": job.event_id}
    at, started = utcnow(), time.monotonic()
    lead = {**job.row, "id": job.lead_id}
    try:
        email = compose.letter(job.target, job.envelope, job.columns, [job.row], lead)
    except Exception:
        # Nothing was sent: give the claim back so the retry need not wait out the lease.
        with transaction(deps.sessions) as session:
            deliveries.release(session, job.event_id, holder())
        raise
    try:
        accepted = deps.mailer.send(email)
    except SendFailed as failure:
        ATTEMPT_SECONDS.labels(job.recipient_id).observe(time.monotonic() - started)
        attempt = deliveries.Attempt(at, _ms(started), failure.code, failure.reason)
        # an auction's post is never retried: the step fails and the next bid is posted
        ended = deliveries.Completion("error", failure.reason) if job.once else None
        with transaction(deps.sessions) as session:
            deliveries.record_many(session, [deliveries.Answered(job.claimed, attempt, ended)])
        logger.warning("email to %s failed: %s", job.recipient_id, failure.reason, extra=ids)
        if job.once:
            return
        raise _retry_or_give_up(failure, job.target) from None
    ATTEMPT_SECONDS.labels(job.recipient_id).observe(time.monotonic() - started)
    attempt = deliveries.Attempt(at, _ms(started), accepted.code, accepted.refused)

    delivered = deliveries.Answered(
        job.claimed, attempt, deliveries.Completion("success", None, revenue(None, job.price))
    )

    def record() -> None:
        with transaction(deps.sessions) as session:
            deliveries.record_many(session, [delivered])

    # The server has the email: a short database outage must not get it sent again.
    record_patiently(record, ids=ids, patience=deps.patience)
    DELIVERIES.labels(job.recipient_id, "success").inc()
    if accepted.refused:
        logger.warning(
            "email to %s delivered, but %s", job.recipient_id, accepted.refused, extra=ids
        )
    logger.info("lead emailed to %s (%s)", job.recipient_id, accepted.where, extra=ids)


def _send_batch(batch_id: str, deps: Deps) -> None:
    job = batches.begin_send(deps.sessions, deps.configs, batch_id)
    if job is None:
        return
    try:
        with deps.sessions() as session:
            rows = batches.rows(session, batch_id)
            email = compose.letter(job.target, job.envelope, job.columns, rows)
        accepted = deps.mailer.send(email)
    except BaseException as exc:
        batches.release(deps.sessions, batch_id, str(exc) or type(exc).__name__)
        if isinstance(exc, SendFailed):
            logger.warning("batch %s to %s failed: %s", batch_id, job.recipient_id, exc)
            raise _retry_or_give_up(exc, job.target) from None
        raise
    # The server has the batch: a short database outage must not get it mailed again.
    count = record_patiently(
        lambda: batches.mark_sent(deps.sessions, batch_id, job.price, accepted.refused),
        patience=deps.patience,
    )
    DELIVERIES.labels(job.recipient_id, "success").inc(count)
    if accepted.refused:
        logger.warning(
            "batch %s to %s delivered, but %s", batch_id, job.recipient_id, accepted.refused
        )
    logger.info("batch %s of %d leads emailed to %s", batch_id, count, accepted.where)


def _retry_or_give_up(failure: SendFailed, target: EmailTarget) -> Exception:
    if failure.transient:
        return TransientError(failure.reason, target.retry.schedule)
    return PermanentError(failure.reason)


def _ms(started: float) -> int:
    return int((time.monotonic() - started) * 1000)


def on_exhausted(message: Message, reason: str, deps: Deps) -> None:
    """Retries used up, or a permanent failure: record the error; a lead's flow goes on."""
    assert isinstance(message, DeliverEmail)
    if message.batch_id is not None:
        if batches.give_up(deps.sessions, deps.configs, message.batch_id, reason):
            logger.warning(
                "batch %s to %s gave up: %s", message.batch_id, message.recipient_id, reason
            )
        return
    if message.lead_id is None or message.event_id is None:
        return
    ids = {"lead_id": message.lead_id, "event_id": message.event_id}
    with transaction(deps.sessions) as session:
        deliveries.complete(
            session, message.event_id, deliveries.Completion("error", reason, dead=True)
        )
    DELIVERIES.labels(message.recipient_id, "error").inc()
    logger.warning("email to %s gave up: %s", message.recipient_id, reason, extra=ids)
    deps.publisher.publish(StepCompleted(lead_id=message.lead_id, event_id=message.event_id))
