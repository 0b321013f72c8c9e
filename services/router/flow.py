"""Applying a flow's steps to a lead, one at a time, inside one database transaction.

``start`` and ``resume`` run steps from where the lead is until a step hands the lead
to a delivery worker (the flow then waits for its ``StepCompleted``) or the flow ends.
They return what to publish after the commit. Both are idempotent: a lead that has
already started, or a step result that is not the one the lead waits for, changes
nothing (a pending hand-off is published again, which delivery workers ignore when
the delivery is already recorded).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from shared.db.engine import as_utc, utcnow
from shared.db.models import Delivery, Event, Lead
from shared.errors import PermanentError
from shared.flowconfig import LeadflowConfig, Recipient
from shared.ids import new_id
from shared.leaddata import base_variables
from shared.messaging import DeliverEmail, DeliverHttp, FlowReply, Message
from shared.rules import evaluate
from shared.templates import render

logger = logging.getLogger(__name__)


@dataclass(slots=True)
class Outbound:
    """What the router publishes once its transaction has committed."""

    messages: list[Message] = field(default_factory=list)
    reply_to: str | None = None
    reply: FlowReply | None = None
    finished: tuple[str, str] | None = None  # (flow id, outcome) when the flow ended


def _ms(start: datetime, end: datetime) -> int:
    return max(0, int((end - start).total_seconds() * 1000))


def _handoff(lead: Lead, event: Event, recipient: Recipient) -> Message:
    if recipient.kind == "http":
        return DeliverHttp(
            lead_id=lead.id, event_id=event.id, recipient_id=event.recipient_id or ""
        )
    return DeliverEmail(recipient_id=event.recipient_id or "", lead_id=lead.id, event_id=event.id)


def recipient_results(events: list[Event]) -> dict[str, dict[str, Any]]:
    results: dict[str, dict[str, Any]] = {}
    for event in events:
        if event.type == "recipient" and event.recipient_id and event.outcome:
            results[event.recipient_id] = {
                **(event.appended or {}),
                "outcome": event.outcome,
                "reason": event.reason,
                "price": event.price,
            }
    return results


def _lead_events(session: Session, lead_id: str) -> list[Event]:
    return list(session.scalars(select(Event).where(Event.lead_id == lead_id)))


def _lock_lead(session: Session, lead_id: str) -> Lead:
    lead = session.get(Lead, lead_id, with_for_update=True)
    if lead is None:
        raise PermanentError(f"unknown lead {lead_id}")
    return lead


def start(session: Session, config_for: Any, lead_id: str) -> Outbound:
    lead = _lock_lead(session, lead_id)
    if lead.state == "done":
        return Outbound()
    events = _lead_events(session, lead.id)
    if lead.waiting_event_id is not None:
        return _republish_waiting(lead, events, config_for(lead.config_version))
    if any(e.type != "source" for e in events):
        return Outbound()
    return _advance(session, lead, events, config_for(lead.config_version))


def resume(session: Session, config_for: Any, lead_id: str, event_id: str) -> Outbound:
    lead = _lock_lead(session, lead_id)
    if lead.state == "done":
        # A replayed delivery may have succeeded after the flow went on without it.
        _refresh_price(lead, _lead_events(session, lead.id))
        return Outbound()
    if lead.waiting_event_id != event_id:
        logger.info(
            "step result for %s is not awaited; ignored",
            event_id,
            extra={"lead_id": lead_id, "event_id": event_id},
        )
        return Outbound()
    events = _lead_events(session, lead.id)
    step_event = next((e for e in events if e.id == event_id), None)
    if step_event is None or step_event.outcome is None:
        raise PermanentError(f"step event {event_id} has no outcome yet")
    lead.waiting_event_id = None
    lead.step_index += 1
    return _advance(session, lead, events, config_for(lead.config_version))


def _republish_waiting(lead: Lead, events: list[Event], config: LeadflowConfig) -> Outbound:
    event = next((e for e in events if e.id == lead.waiting_event_id), None)
    if event is None or event.recipient_id is None:
        return Outbound()
    recipient = config.recipients[event.recipient_id]
    return Outbound(messages=[_handoff(lead, event, recipient)])


def _advance(session: Session, lead: Lead, events: list[Event], config: LeadflowConfig) -> Outbound:
    flow = config.flows[lead.flow_id]
    received_at = as_utc(lead.received_at) or utcnow()
    variables = base_variables(
        lead_id=lead.id,
        flow_id=lead.flow_id,
        source_id=lead.source_id,
        received_at=received_at,
        fields=lead.fields,
    )
    variables.update(recipient_results(events))
    index = lead.step_index
    while index < len(flow.steps):
        step = flow.steps[index]
        now = utcnow()
        if step.filter is not None:
            matched = evaluate(step.filter.rule_set, variables)
            reason = (
                render(step.filter.reason, variables) if matched and step.filter.reason else None
            )
            event = Event(
                id=new_id(),
                lead_id=lead.id,
                type="filter",
                step=index,
                outcome="stop" if matched else "continue",
                reason=reason,
                price=0.0,
                started_at=now,
                completed_at=now,
                ms=0,
                attempts=0,
            )
            session.add(event)
            events.append(event)
            if matched:
                lead.step_index = index
                return _finish(lead, events, step.filter.outcome, reason)
            index += 1
            continue
        recipient_id = step.recipient or ""
        recipient = config.recipients[recipient_id]
        if step.criteria is not None and not evaluate(step.criteria, variables):
            event = Event(
                id=new_id(),
                lead_id=lead.id,
                type="recipient",
                step=index,
                recipient_id=recipient_id,
                outcome="skip",
                reason="Recipient criteria not met",
                price=0.0,
                started_at=now,
                completed_at=now,
                ms=0,
                attempts=0,
            )
            session.add(event)
            events.append(event)
            index += 1
            continue
        waits = recipient.kind == "http" or (
            recipient.email is not None and recipient.email.mode == "realtime"
        )
        event = Event(
            id=new_id(),
            lead_id=lead.id,
            type="recipient",
            step=index,
            recipient_id=recipient_id,
            price=0.0,
            started_at=now,
            attempts=0,
            outcome=None if waits else "success",
            completed_at=None if waits else now,
            ms=None if waits else 0,
        )
        delivery = Delivery(
            event_id=event.id,
            lead_id=lead.id,
            recipient_id=recipient_id,
            kind=recipient.kind,
            status="queued" if waits else "pending",
            attempts=0,
            created_at=now,
            updated_at=now,
        )
        session.add(event)
        session.add(delivery)
        events.append(event)
        if waits:
            lead.step_index = index
            lead.waiting_event_id = event.id
            logger.info(
                "lead handed to %s", recipient_id, extra={"lead_id": lead.id, "event_id": event.id}
            )
            return Outbound(messages=[_handoff(lead, event, recipient)])
        variables[recipient_id] = {"outcome": "success", "reason": None, "price": 0.0}
        logger.info(
            "lead pending for %s", recipient_id, extra={"lead_id": lead.id, "event_id": event.id}
        )
        index += 1
    lead.step_index = index
    return _finish(lead, events, "success", None)


def _accepted_price(events: list[Event]) -> float:
    return sum(e.price or 0.0 for e in events if e.type == "recipient" and e.outcome == "success")


def _refresh_price(lead: Lead, events: list[Event]) -> None:
    price = _accepted_price(events)
    if price == lead.price:
        return
    lead.price = price
    source = next((e for e in events if e.type == "source"), None)
    if source is not None:
        source.price = price
    logger.info("lead price is now %g after a late step result", price, extra={"lead_id": lead.id})


def _finish(lead: Lead, events: list[Event], outcome: str, reason: str | None) -> Outbound:
    now = utcnow()
    price = _accepted_price(events)
    lead.state, lead.outcome, lead.reason, lead.price = "done", outcome, reason, price
    lead.completed_at = now
    lead.waiting_event_id = None
    source = next(e for e in events if e.type == "source")
    source.outcome, source.reason, source.price = outcome, reason, price
    source.completed_at = now
    source.ms = _ms(as_utc(source.started_at) or now, now)
    source.steps_processed = sum(1 for e in events if e.type in ("filter", "recipient"))
    logger.info(
        "flow finished: %s%s",
        outcome,
        f" ({reason})" if reason else "",
        extra={"lead_id": lead.id, "event_id": source.id},
    )
    outbound = Outbound(finished=(lead.flow_id, outcome))
    if lead.reply_to:
        outbound.reply_to = lead.reply_to
        outbound.reply = FlowReply(lead_id=lead.id, outcome=outcome, reason=reason, price=price)
    return outbound
