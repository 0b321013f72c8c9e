"""The database mirror of parked messages (AMQP cannot browse a queue)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from shared.db.engine import utcnow
from shared.db.models import DeadLetter
from shared.messaging import ParkedMessage


def mirror_dead_letter(session: Session, parked: ParkedMessage) -> None:
    """Insert or refresh the mirror row of a parked message, in the caller's transaction."""
    payload = parked.payload if isinstance(parked.payload, dict) else {}
    row = session.scalars(
        select(DeadLetter).where(DeadLetter.message_id == parked.message_id)
    ).first()
    if row is None:
        row = DeadLetter(message_id=parked.message_id)
        session.add(row)
    row.queue = parked.queue
    row.lead_id = payload.get("lead_id")
    row.event_id = payload.get("event_id")
    row.recipient_id = payload.get("recipient_id")
    row.attempts = parked.attempts
    row.last_reason = parked.last_reason
    row.failures = {"failures": parked.failures}
    row.body = parked.body
    row.parked_at = utcnow()
    row.state = "parked"
    row.resolved_at = None
