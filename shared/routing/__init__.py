"""Routing: applying a flow's steps to leads, a batch of messages in one transaction.

Used by the router (new leads, step results) and by HTTP delivery, which records a
buyer's answer and moves the lead on in the same transaction (no step result goes back
through the queue on that path).

For a new lead (``LeadSubmitted``) or a step result (``StepCompleted``) the router runs
steps from where the lead is until a step hands the lead to a delivery worker (the flow
then waits for its ``StepCompleted``) or the flow ends, and returns what to publish after
the commit. It is idempotent: a lead that has already started, or a step result that is
not the one the lead waits for, changes nothing; the hand-off the lead waits on is
published again while its delivery is still ``queued`` (the router may have stopped
between its commit and the publish).

``route`` takes every message the router has in hand at once (``shared.db.grouped``):
one ``SELECT ... FOR UPDATE`` of their leads (in id order), one SELECT of their events,
then one INSERT of events, one of deliveries, one UPDATE of leads and one of source
events for the whole batch (Core statements built once; no ORM on this path).

The package, by what each part owns: ``records`` (the locked lead, its events, the rows
one message adds and the statements a batch runs once), ``flowsteps`` (a flow's steps
from where the lead is: filters, recipient steps and their gates, the end of the flow),
``sending`` (a lead handed to a recipient, for a recipient step and an auction's post
alike), ``auctions`` (auction steps), and here the messages: which lead, which step,
started, resumed or due.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.orm import Session

from shared import resubmits
from shared.errors import LeadflowError, PermanentError, TransientError
from shared.flowconfig import LeadflowConfig
from shared.gates import duplicates, steps
from shared.messaging import LeadSubmitted, StepCompleted, StepDue
from shared.messaging.topology import delay_tier
from shared.routing import auctions
from shared.routing.flowsteps import advance, refresh_price
from shared.routing.records import (
    DELIVERY_STATUS,
    Batch,
    Outbound,
    RoutedLead,
    StepEvent,
    Writes,
    events_of,
    handoff,
    lock_leads,
    publish_outbound,
)

logger = logging.getLogger(__name__)


#: A recipient's duplicate key taken by another transaction meanwhile: the batch again.
RACED_RETRY_SCHEDULE = (0.5, 1.0, 2.0)


RouterMessage = LeadSubmitted | StepCompleted | StepDue


def route(
    session: Session, config_for: Any, messages: Sequence[RouterMessage]
) -> list[Outbound | BaseException]:
    """Apply a batch of leads and step results in one transaction: every lead read and
    locked at once, each message applied in order, every row written in one statement per
    table. Each message gets its ``Outbound``, or the error that concerns it alone."""
    connection = session.connection()
    lead_ids = list(dict.fromkeys(m.lead_id for m in messages))
    leads = lock_leads(connection, lead_ids)
    events = events_of(connection, list(leads))
    held = resubmits.Held(
        connection,
        (
            key
            for lead in leads.values()
            if lead.state != "done"
            # a lead waiting on a recipient holds that step's keys already (an auction
            # reads its next bidder's when it gets there)
            for key in duplicates.recipient_keys_in_flow(
                config_for(lead.config_version),
                lead.flow_id,
                lead.fields,
                lead.step_index + (1 if lead.waiting_event_id else 0),
            )
        ),
    )
    gates = steps.settle_and_read(connection, config_for, leads, events, messages)
    batch = Batch()
    results: list[Outbound | BaseException] = []
    for message in messages:
        lead = leads.get(message.lead_id)
        try:
            if lead is None:
                raise PermanentError(f"unknown lead {message.lead_id}")
            writes = Writes(lead={"key": lead.id}, held=held, gates=gates)
            match message:
                case LeadSubmitted():
                    outbound = _start(connection, config_for, lead, events[lead.id], writes)
                case StepCompleted(event_id=event_id):
                    outbound = _resume(
                        connection, config_for, lead, events[lead.id], event_id, writes
                    )
                case StepDue():
                    outbound = _due(config_for, lead, events[lead.id], message, writes)
        except LeadflowError as exc:
            results.append(exc)
            continue
        batch.add(writes)
        results.append(outbound)
    try:
        held.write()
    except resubmits.Raced as exc:
        raise TransientError(str(exc), RACED_RETRY_SCHEDULE) from exc
    gates.counters.write()
    batch.execute(connection)
    return results


def route_with(
    config_for: Any, session: Session, messages: Sequence[RouterMessage]
) -> list[Outbound | BaseException]:
    """``route`` with the configuration lookup first (for ``GroupCommit``)."""
    return route(session, config_for, messages)


@dataclass(slots=True)
class FirstPass:
    """A new lead's first pass, made before its rows are inserted (intake's transaction):
    its rows as they will be stored, the rows of its steps, and what to publish."""

    lead_row: dict[str, Any]
    event_row: dict[str, Any]
    step_events: list[dict[str, Any]]
    deliveries: list[dict[str, Any]]
    outbound: Outbound


def first_pass(
    lead_row: dict[str, Any],
    event_row: dict[str, Any],
    config: LeadflowConfig,
    held: resubmits.Held | None = None,
    gates: steps.StepGates | None = None,
) -> FirstPass:
    """Route a lead intake is about to store (state ``new``) as far as it goes before
    something waits: the same steps the router runs, with no row of the lead read or
    updated (recipients' duplicate keys are claimed through intake's ``held``)."""
    lead = RoutedLead(*(lead_row[name] for name in RoutedLead.__dataclass_fields__))
    source = StepEvent(
        event_row["id"], "source", None, None, None, Decimal(0), event_row["started_at"]
    )
    writes = Writes(lead={"key": lead.id}, held=held, gates=gates)
    outbound = advance(lead, [source], config, writes)
    changes = {k: v for k, v in writes.lead.items() if k != "key"}
    settled = {k: v for k, v in (writes.source or {}).items() if k != "key"}
    return FirstPass(
        {**lead_row, **changes},
        {**event_row, **settled},
        writes.events,
        writes.deliveries,
        outbound,
    )


def start(session: Session, config_for: Any, lead_id: str) -> Outbound:
    """``route`` for one new lead (raises its error)."""
    return _one(route(session, config_for, [LeadSubmitted(lead_id=lead_id)]))


def resume(session: Session, config_for: Any, lead_id: str, event_id: str) -> Outbound:
    """``route`` for one step result (raises its error)."""
    return _one(route(session, config_for, [StepCompleted(lead_id=lead_id, event_id=event_id)]))


def _one(results: list[Outbound | BaseException]) -> Outbound:
    (result,) = results
    if isinstance(result, BaseException):
        raise result
    return result


def _start(
    connection: Connection,
    config_for: Any,
    lead: RoutedLead,
    events: list[StepEvent],
    writes: Writes,
) -> Outbound:
    if lead.state == "done":
        return Outbound()
    if lead.waiting_event_id is not None:
        return _republish_waiting(connection, lead, events, config_for(lead.config_version))
    if lead.state != "new":
        return Outbound()  # started already (a copy of its message)
    return advance(lead, events, config_for(lead.config_version), writes)


def _resume(
    connection: Connection,
    config_for: Any,
    lead: RoutedLead,
    events: list[StepEvent],
    event_id: str,
    writes: Writes,
) -> Outbound:
    if lead.state == "done":
        # A replayed delivery may have succeeded after the flow went on without it.
        refresh_price(lead, events, writes)
        if not lead.sold and any(e.id == event_id and e.outcome == "success" for e in events):
            lead.sold = writes.lead["sold"] = True
        return Outbound()
    if lead.waiting_event_id != event_id:
        if lead.waiting_event_id is not None and any(
            e.id == event_id and e.outcome is not None for e in events
        ):
            # This result was applied, but the hand-off it led to may never have been
            # published (the router stopped between its commit and the publish).
            return _republish_waiting(connection, lead, events, config_for(lead.config_version))
        logger.info(
            "step result for %s is not awaited; ignored",
            event_id,
            extra={"lead_id": lead.id, "event_id": event_id},
        )
        return Outbound()
    step_event = next((e for e in events if e.id == event_id), None)
    if step_event is not None and (
        step_event.type == "auction" or step_event.parent_event_id is not None
    ):
        auctions.resumed(lead, events, step_event, writes)
        return advance(lead, events, config_for(lead.config_version), writes)
    if step_event is None or step_event.outcome is None:
        raise PermanentError(f"step event {event_id} has no outcome yet")
    lead.sold = lead.sold or step_event.outcome == "success"
    lead.waiting_event_id = None
    lead.step_index += 1
    return advance(lead, events, config_for(lead.config_version), writes)


def _due(
    config_for: Any,
    lead: RoutedLead,
    events: list[StepEvent],
    message: StepDue,
    writes: Writes,
) -> Outbound:
    """A step held while its recipient was closed: waiting still (sent on to the next
    delay tier), or due, and run again as the same step event."""
    held = next((e for e in events if e.id == message.event_id), None)
    if lead.state == "done" or lead.waiting_event_id != message.event_id or held is None:
        return Outbound()  # a copy of a message already applied
    if held.outcome != "pending":
        return Outbound()
    if delay_tier(message.delay_ms()):
        return Outbound(messages=[message])  # on to the next delay tier
    lead.waiting_event_id = None
    writes.reopen = held
    return advance(lead, events, config_for(lead.config_version), writes)


def _republish_waiting(
    connection: Connection, lead: RoutedLead, events: list[StepEvent], config: LeadflowConfig
) -> Outbound:
    """The hand-off the lead waits on, published again only while no delivery worker has
    taken it up (``queued``): a copy of a delivery already under way, or waiting in a retry
    tier, would send it ahead of the recipient's schedule."""
    event = next((e for e in events if e.id == lead.waiting_event_id), None)
    if event is None or event.recipient_id is None:
        return Outbound()
    status = connection.execute(DELIVERY_STATUS, {"event_id": event.id}).scalar()
    if status != "queued":
        return Outbound()
    recipient = config.recipients[event.recipient_id]
    return Outbound(messages=[handoff(lead, event, recipient)])


__all__ = [
    "FirstPass",
    "Outbound",
    "RoutedLead",
    "RouterMessage",
    "StepEvent",
    "first_pass",
    "publish_outbound",
    "resume",
    "route",
    "route_with",
    "start",
]
