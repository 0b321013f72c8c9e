"""What real-time email delivery reads and writes: the job for one lead, attempts, outcome."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from services.email_delivery.compose import Envelope
from shared.configstore import ConfigStore
from shared.db.engine import as_utc, utcnow
from shared.db.models import Delivery, DeliveryAttempt, Lead
from shared.deliveries import FINAL
from shared.errors import PermanentError
from shared.flowconfig import EmailTarget
from shared.leaddata import display_fields
from shared.messaging import DeliverEmail


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


def load_job(session: Session, configs: ConfigStore, message: DeliverEmail) -> LeadJob:
    delivery = session.get(Delivery, message.event_id) if message.event_id else None
    lead = session.get(Lead, message.lead_id) if message.lead_id else None
    if delivery is None or lead is None:
        raise PermanentError(f"no delivery {message.event_id} for lead {message.lead_id}")
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
        final=delivery.status in FINAL,
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
    )


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
