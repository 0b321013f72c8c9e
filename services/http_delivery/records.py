"""What HTTP delivery reads and writes: the job for one delivery, its attempts, its outcome."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from shared.configstore import ConfigStore
from shared.db.engine import as_utc, utcnow
from shared.db.models import Delivery, DeliveryAttempt, Lead
from shared.deliveries import FINAL
from shared.errors import PermanentError
from shared.flowconfig import HttpTarget
from shared.leaddata import base_variables
from shared.messaging import DeliverHttp

EXCERPT_CHARS = 2048


@dataclass(frozen=True, slots=True)
class Job:
    lead_id: str
    event_id: str
    recipient_id: str
    attempt: int
    target: HttpTarget
    flow_fields: list[str]
    variables: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Claim:
    """``send``: this worker owns the attempt; ``final``: already done; ``busy``: another
    worker holds a live claim (a duplicate message)."""

    state: str
    job: Job | None = None


LEASE_MARGIN_SECONDS = 5.0


def claim(session: Session, configs: ConfigStore, message: DeliverHttp) -> Claim:
    """Take the next attempt of a delivery, in the transaction that reads what it needs.

    A claim is a ``sending`` status stamped with ``updated_at``; it lapses after the
    request timeout plus a margin, so a worker killed mid-request never strands a lead.
    """
    delivery = session.get(Delivery, message.event_id, with_for_update=True)
    lead = session.get(Lead, message.lead_id)
    if delivery is None or lead is None:
        raise PermanentError(f"no delivery {message.event_id} for lead {message.lead_id}")
    if delivery.status in FINAL:
        return Claim("final")
    config = configs.get(lead.config_version)
    recipient = config.recipients.get(delivery.recipient_id)
    if recipient is None or recipient.http is None:
        raise PermanentError(f"recipient {delivery.recipient_id} has no http settings")
    now = utcnow()
    lease = timedelta(seconds=recipient.http.timeout + LEASE_MARGIN_SECONDS)
    if delivery.status == "sending" and (as_utc(delivery.updated_at) or now) + lease > now:
        return Claim("busy")
    delivery.status = "sending"
    delivery.attempts += 1
    delivery.updated_at = now
    flow = config.flows[lead.flow_id]
    variables = base_variables(
        lead_id=lead.id,
        flow_id=lead.flow_id,
        source_id=lead.source_id,
        received_at=as_utc(lead.received_at) or now,
        fields=lead.fields,
    )
    variables["event"] = {"id": delivery.event_id}
    return Claim(
        "send",
        Job(
            lead_id=lead.id,
            event_id=delivery.event_id,
            recipient_id=delivery.recipient_id,
            attempt=delivery.attempts,
            target=recipient.http,
            flow_fields=list(flow.fields),
            variables=variables,
        ),
    )


@dataclass(frozen=True, slots=True)
class AttemptRecord:
    at: datetime
    ms: int
    status: int | None
    error: str | None
    excerpt: str | None


def record_attempt(session: Session, job: Job, attempt: AttemptRecord, *, retrying: bool) -> None:
    """Store the attempt this worker claimed; a retried delivery waits as ``retrying``."""
    session.add(
        DeliveryAttempt(
            event_id=job.event_id,
            number=job.attempt,
            at=attempt.at,
            ms=attempt.ms,
            status=attempt.status,
            error=attempt.error,
            excerpt=(attempt.excerpt or "")[:EXCERPT_CHARS] or None,
        )
    )
    if retrying:
        delivery = session.get(Delivery, job.event_id, with_for_update=True)
        if delivery is not None and delivery.status == "sending":
            delivery.status = "retrying"
            delivery.updated_at = utcnow()
