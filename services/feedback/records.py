"""What the feedback service writes, in one transaction per request: a ``feedback-received``
event (accepted or not) linked to the lead, the step and the recipient; for accepted
feedback the delivery's new status and an outbox row (``FeedbackAccepted``) that the relay
publishes after the commit.

The delivery row is locked (and SQLite's write lock is taken at BEGIN, as in
``shared.db.engine.transaction``), so of two concurrent returns of one delivery only the
first is accepted.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from services.feedback.acceptance import DeliveryState, decide
from services.feedback.body import Feedback, InvalidFeedback
from shared.configstore import ConfigStore
from shared.db.doubt import transaction_or_find_out
from shared.db.engine import SessionFactory, as_utc, utcnow
from shared.db.models import Delivery, Event, Lead, OutboxMessage
from shared.errors import LeadflowError
from shared.flowconfig import StepFeedback
from shared.ids import new_id
from shared.messaging import Envelope, FeedbackAccepted

EVENT_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


class UnknownEvent(LeadflowError):
    """No event has the id the feedback was posted with."""


@dataclass(frozen=True, slots=True)
class Receipt:
    """The answer to one feedback request, and what to publish once it is committed."""

    outcome: str  # success | failure | error
    reason: str | None  # why it was not accepted, or what is wrong with it
    http_status: int
    lead_id: str
    event_id: str  # the step's event (the one the feedback was posted with)
    recipient_id: str | None
    feedback_event_id: str
    kind: str | None
    outbox: OutboxMessage | None

    def answer(self) -> dict[str, Any]:
        return {"outcome": self.outcome, "reason": self.reason}


def step_rules(configs: ConfigStore, lead: Lead, event: Event) -> StepFeedback | None:
    """The feedback settings of the step ``event`` records, in the lead's configuration
    version; None when the event is not a recipient step."""
    if event.type != "recipient" or event.step is None:
        return None
    flow = configs.get(lead.config_version).flows.get(lead.flow_id)
    if flow is None or not 0 <= event.step < len(flow.steps):
        return None
    step = flow.steps[event.step]
    return step.feedback if step.recipient == event.recipient_id else None


def receive(
    session: Session,
    configs: ConfigStore,
    event_id: str,
    feedback: Feedback | InvalidFeedback,
    received_at: datetime,
) -> Receipt:
    """Decide on and record one feedback request; raises UnknownEvent."""
    event = session.get(Event, event_id) if EVENT_ID.match(event_id) else None
    lead = session.get(Lead, event.lead_id) if event is not None else None
    if event is None or lead is None:
        raise UnknownEvent(f"Unknown event id {event_id[:64]!r}")
    delivery = (
        session.get(Delivery, event.id, with_for_update=True) if event.type == "recipient" else None
    )
    now = utcnow()
    record = Event(
        id=new_id(),
        lead_id=lead.id,
        type="feedback-received",
        step=None,
        recipient_id=event.recipient_id,
        price=0.0,
        started_at=received_at,
        completed_at=now,
        ms=max(0, int((now - received_at).total_seconds() * 1000)),
        attempts=0,
        parent_event_id=event.id,
    )
    outbox: OutboxMessage | None = None
    http_status = 200
    if isinstance(feedback, InvalidFeedback):
        kind = None
        record.outcome, record.reason = "error", feedback.reason
        record.appended = {"status": feedback.status}
        http_status = feedback.status
    else:
        kind = feedback.kind
        state = (
            DeliveryState(delivery.status, as_utc(delivery.delivered_at))
            if delivery is not None
            else None
        )
        decision = decide(
            step_rules(configs, lead, event), state, feedback.kind, feedback.reason, now
        )
        record.appended = {"type": feedback.kind, "reason": feedback.reason}
        if decision.accepted and delivery is not None:
            record.outcome, record.reason = "success", decision.reason
            delivery.status = decision.status or delivery.status
            delivery.updated_at = now
            envelope = Envelope.of(
                FeedbackAccepted(lead_id=lead.id, event_id=event.id, feedback_event_id=record.id)
            )
            outbox = OutboxMessage(
                queue=envelope.queue, body=envelope.encode().decode(), created_at=now
            )
            http_status = 201
        else:
            record.outcome, record.reason = "failure", decision.refusal
            if decision.reason != feedback.reason:
                record.appended["mapped_reason"] = decision.reason
    session.add(record)
    if outbox is not None:
        session.add(outbox)
    session.flush()
    return Receipt(
        outcome=record.outcome,
        reason=None if record.outcome == "success" else record.reason,
        http_status=http_status,
        lead_id=lead.id,
        event_id=event.id,
        recipient_id=event.recipient_id,
        feedback_event_id=record.id,
        kind=kind,
        outbox=outbox,
    )


def record(
    factory: SessionFactory,
    configs: ConfigStore,
    event_id: str,
    feedback: Feedback | InvalidFeedback,
    received_at: datetime,
) -> Receipt:
    """``receive`` in its own transaction (committed when this returns). A commit whose
    answer was lost counts if the feedback event it wrote is there, so a buyer is not told
    503 for a return that was taken (and then refused as already returned on its retry)."""
    return transaction_or_find_out(
        factory,
        lambda session: receive(session, configs, event_id, feedback, received_at),
        _taken,
        ids={"event_id": event_id[:64]},
    )


def _taken(session: Session, receipt: Receipt) -> bool:
    """Whether the feedback event ``receipt`` wrote is stored."""
    return session.get(Event, receipt.feedback_event_id) is not None
