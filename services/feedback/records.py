"""What the feedback service writes, in one transaction per request: a ``feedback-received``
event (accepted or not) linked to the lead, the step and the recipient; for accepted
feedback the delivery's new status and an outbox row (``FeedbackAccepted``) that the relay
publishes after the commit.

The delivery row is locked (and SQLite's write lock is taken at BEGIN, as in
``shared.db.engine.transaction``), so of two concurrent returns of one delivery only the
first is accepted. A request repeating an earlier one's ``Idempotency-Key`` (the buyer's
retry after a lost answer) gets the first one's answer and changes nothing.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session

from services.feedback.acceptance import Decision, DeliveryState, decide
from services.feedback.body import Feedback, InvalidFeedback
from shared import deliveries, outbox, resubmits
from shared.configstore import ConfigStore
from shared.db.engine import SessionFactory, as_utc, transaction, utcnow
from shared.db.models import Delivery, Event, Lead
from shared.db.rows import event_row
from shared.errors import LeadflowError
from shared.flowconfig import StepFeedback
from shared.ids import new_id
from shared.messaging import FeedbackAccepted
from shared.money import returns
from shared.outbox import Outgoing
from shared.routing.records import ms

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
    kind: str | None
    outbox: Outgoing | None  # the outbox row, to publish once committed

    def answer(self) -> dict[str, Any]:
        return {"outcome": self.outcome, "reason": self.reason}


def step_rules(
    session: Session, configs: ConfigStore, lead: Lead, event: Event
) -> StepFeedback | None:
    """The feedback settings of the step ``event`` records, in the lead's configuration
    version (an auction's post: its auction step's); None when the event is not a
    recipient step."""
    if event.type != "recipient":
        return None
    index = event.step
    if index is None and event.parent_event_id is not None:
        auction = session.get(Event, event.parent_event_id)
        index = auction.step if auction is not None and auction.type == "auction" else None
    flow = configs.get(lead.config_version).flows.get(lead.flow_id)
    if flow is None or index is None or not 0 <= index < len(flow.steps):
        return None
    step = flow.steps[index]
    return step.feedback if event.recipient_id in step.recipient_ids else None


def _receipt(received: Mapping[Any, Any], http_status: int, outbox: Outgoing | None) -> Receipt:
    """The answer a ``feedback-received`` event records."""
    accepted = received["outcome"] == "success"
    return Receipt(
        outcome=received["outcome"] or "failure",
        reason=None if accepted else received["reason"],
        http_status=http_status,
        lead_id=received["lead_id"],
        event_id=received["parent_event_id"],
        recipient_id=received["recipient_id"],
        kind=(received["appended"] or {}).get("type"),
        outbox=outbox,
    )


def _answered(session: Session, earlier_id: str) -> Receipt | None:
    """The answer the feedback recorded as ``earlier_id`` got (a repeat of its key)."""
    earlier = (
        session.execute(select(Event.__table__).where(Event.id == earlier_id)).mappings().first()
    )
    if earlier is None or earlier["parent_event_id"] is None:
        return None
    return _receipt(earlier, 201 if earlier["outcome"] == "success" else 200, None)


def _decide(
    session: Session,
    configs: ConfigStore,
    lead: Lead,
    event: Event,
    delivery: Delivery | None,
    feedback: Feedback,
    now: datetime,
) -> Decision:
    """``acceptance.decide`` on what it needs read: the delivery's state, the step's
    feedback settings and, for a return, whether it passes the recipient's limit."""
    state = (
        DeliveryState(delivery.status, as_utc(delivery.delivered_at))
        if delivery is not None
        else None
    )
    rules = step_rules(session, configs, lead, event)
    limit = rules.returns.max_percent if rules is not None else None
    over = (
        feedback.kind == "return"
        and limit is not None
        and returns.over_limit(
            session.connection(),
            configs.get(lead.config_version).recipients.get(event.recipient_id or ""),
            event.recipient_id or "",
            limit,
            now,
        )
    )
    return decide(rules, state, feedback.kind, feedback.reason, now, over_limit=over)


def _accept(
    session: Session,
    configs: ConfigStore,
    lead: Lead,
    event: Event,
    kind: str | None,
    feedback_event_id: str,
    decision: Decision,
    now: datetime,
) -> Outgoing | None:
    """Accepted feedback's writes after its event: the delivery's new status (its row is
    locked), and the outbox row to forward it to the source, returned to be published
    once committed. A return is one of ``shared.money.returns``: approved at once (the
    revenue reversed in the ledger, forwarded), or waiting for an operator."""
    if kind == "return":
        # the decision says whether it waits for an operator (``approval: manual``)
        return returns.request(
            session,
            configs.get(lead.config_version),
            lead,
            event,
            feedback_event_id,
            decision.reason,
            now,
            approve=decision.status != deliveries.Status.RETURN_REQUESTED,
        )
    session.execute(
        update(Delivery)
        .where(Delivery.event_id == event.id)
        .values(status=decision.status, updated_at=now)
    )
    return outbox.store(
        session,
        FeedbackAccepted(
            lead_id=event.lead_id, event_id=event.id, feedback_event_id=feedback_event_id
        ),
        now,
    )


def record(
    factory: SessionFactory,
    configs: ConfigStore,
    event_id: str,
    feedback: Feedback | InvalidFeedback,
    received_at: datetime,
    idempotency_key: str | None = None,
) -> Receipt:
    """Decide on and record one feedback request in its own transaction (committed when
    this returns); raises UnknownEvent. A request whose ``Idempotency-Key`` was seen for
    this event (within 24 hours) gets the first one's answer and changes nothing: a
    buyer's retry after a lost answer."""
    with transaction(factory) as session:
        event = session.get(Event, event_id) if EVENT_ID.match(event_id) else None
        lead = session.get(Lead, event.lead_id) if event is not None else None
        if event is None or lead is None:
            raise UnknownEvent(f"Unknown event id {event_id[:64]!r}")
        delivery = (
            session.get(Delivery, event.id, with_for_update=True)
            if event.type == "recipient"
            else None
        )
        now = utcnow()
        keys = (
            resubmits.keys_of_header("feedback", event.id, idempotency_key)
            if idempotency_key and not isinstance(feedback, InvalidFeedback)
            else []
        )
        earlier = resubmits.find(session.connection(), keys, now) if keys else None
        repeated = _answered(session, earlier) if earlier is not None else None
        if repeated is not None:
            return repeated
        received = event_row(
            id=new_id(),
            lead_id=lead.id,
            type="feedback-received",
            started_at=received_at,
            recipient_id=event.recipient_id,
        )
        received.update(completed_at=now, ms=ms(received_at, now), parent_event_id=event.id)
        accepted: Decision | None = None
        if isinstance(feedback, InvalidFeedback):
            kind, http_status = None, feedback.status
            received.update(outcome="error", reason=feedback.reason)
            received["appended"] = {"status": feedback.status}
        else:
            kind, http_status = feedback.kind, 200
            decision = _decide(session, configs, lead, event, delivery, feedback, now)
            received["appended"] = {"type": feedback.kind, "reason": feedback.reason}
            if decision.accepted and delivery is not None:
                status = decision.status or delivery.status
                if status != delivery.status and not deliveries.can_move(delivery.status, status):
                    raise LeadflowError(
                        f"delivery {event.id} cannot go from {delivery.status} to {status}"
                    )
                received.update(outcome="success", reason=decision.reason)
                accepted, http_status = decision, 201
            else:
                received.update(outcome="failure", reason=decision.refusal)
                if decision.reason != feedback.reason:
                    received["appended"]["mapped_reason"] = decision.reason
        session.execute(insert(Event).values(received))
        forwarded = (
            _accept(session, configs, lead, event, kind, received["id"], accepted, now)
            if accepted is not None
            else None
        )
        if keys:
            resubmits.take(session.connection(), [(received["id"], keys)], now)
    return _receipt(received, http_status, forwarded)
