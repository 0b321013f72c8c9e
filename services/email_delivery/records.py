"""What real-time email delivery reads and writes: the job for one lead, attempts, outcome.

A job is claimed before the message is sent: the delivery becomes ``sending`` with a
lease, so a second copy of the message (RabbitMQ redelivers what a worker held when its
connection dropped, while that worker may still be sending it) waits instead of mailing
the lead again. A lease that lapses (the worker died) lets the next copy send it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from services.email_delivery.compose import Envelope
from shared.configstore import ConfigStore
from shared.db.engine import as_utc, utcnow
from shared.db.models import Delivery, DeliveryAttempt, Lead
from shared.deliveries import FINAL
from shared.errors import Busy, PermanentError
from shared.flowconfig import EmailTarget
from shared.leaddata import display_fields
from shared.messaging import DeliverEmail

#: How long a claim keeps other copies of the message waiting (a send takes seconds).
LEASE = timedelta(minutes=2)
#: How a second copy waits for the worker holding the lease before looking again.
BUSY_RETRY_SCHEDULE = (5.0, 15.0, 30.0)


@dataclass(frozen=True, slots=True)
class LeadJob:
    lead_id: str
    event_id: str
    recipient_id: str
    attempt: int
    final: bool
    target: EmailTarget
    columns: list[str]
    row: dict[str, Any]
    envelope: Envelope
    claimed_at: datetime | None = None  # stamped on the claim (None: final, nothing claimed)


def claim(session: Session, configs: ConfigStore, message: DeliverEmail) -> LeadJob:
    """The job for one lead, its delivery claimed (``sending``) unless it is final; raises
    ``Busy`` while another worker holds the claim."""
    delivery = (
        session.get(Delivery, message.event_id, with_for_update=True) if message.event_id else None
    )
    lead = session.get(Lead, message.lead_id) if message.lead_id else None
    if delivery is None or lead is None:
        raise PermanentError(f"no delivery {message.event_id} for lead {message.lead_id}")
    final = delivery.status in FINAL
    now = utcnow()
    if not final:
        held_until = (as_utc(delivery.updated_at) or now) + LEASE
        if delivery.status == "sending" and held_until > now:
            raise Busy("another worker is emailing this lead", BUSY_RETRY_SCHEDULE)
        delivery.status, delivery.updated_at = "sending", now
    config = configs.get(lead.config_version)
    recipient = config.recipients.get(delivery.recipient_id)
    if recipient is None or recipient.email is None:
        raise PermanentError(f"recipient {delivery.recipient_id} has no email settings")
    flow = config.flows[lead.flow_id]
    return LeadJob(
        lead_id=lead.id,
        event_id=delivery.event_id,
        recipient_id=delivery.recipient_id,
        attempt=delivery.attempts + 1,
        final=final,
        target=recipient.email,
        columns=list(flow.fields),
        row=display_fields(lead.fields),
        envelope=Envelope(
            recipient_id=delivery.recipient_id,
            recipient_name=recipient.name,
            flows=[(lead.flow_id, flow.name)],
            at=as_utc(lead.received_at) or utcnow(),
            count=1,
            lead_id=lead.id,
            event_id=delivery.event_id,
        ),
        claimed_at=None if final else now,
    )


def holds(session: Session, job: LeadJob) -> bool:
    """Whether the claim of ``job`` is stored (read after its commit went unanswered)."""
    if job.claimed_at is None:
        return True
    delivery = session.get(Delivery, job.event_id)
    return (
        delivery is not None
        and delivery.status == "sending"
        and as_utc(delivery.updated_at) == job.claimed_at
    )


def release(session: Session, job: LeadJob) -> None:
    """Give a claim back (nothing was sent): the next copy need not wait for the lease."""
    delivery = session.get(Delivery, job.event_id, with_for_update=True)
    if delivery is not None and delivery.status == "sending":
        delivery.status, delivery.updated_at = "retrying", utcnow()


@dataclass(frozen=True, slots=True)
class AttemptRecord:
    at: datetime
    ms: int
    code: int | None  # the SMTP reply code, when there was one
    error: str | None


def record_attempt(
    session: Session, job: LeadJob, attempt: AttemptRecord, *, retrying: bool
) -> bool:
    """Store one attempt; False when this attempt was recorded already (a duplicate message)."""
    delivery = session.get(Delivery, job.event_id, with_for_update=True)
    if delivery is None or delivery.status in FINAL or delivery.attempts >= job.attempt:
        return False
    session.add(
        DeliveryAttempt(
            event_id=job.event_id,
            number=job.attempt,
            at=attempt.at,
            ms=attempt.ms,
            status=attempt.code,
            error=attempt.error,
        )
    )
    delivery.attempts = job.attempt
    delivery.updated_at = utcnow()
    if retrying:
        delivery.status = "retrying"
    return True
