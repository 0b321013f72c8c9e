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

Why one module of this size: it is the flow engine. Intake's first pass, the router and
HTTP delivery's record-and-route all run the same ``_advance``; the steps, the batch of
writes and the replies depend on each other's state (the lead being routed), and a split
would pass that state across modules for no reader's gain.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, Table, bindparam, insert, select
from sqlalchemy.orm import Session

from shared import auction, pings, resubmits
from shared.db.engine import as_utc, utcnow
from shared.db.models import Base
from shared.db.queries import PerDialect, UpdateMany
from shared.db.rows import event_row, insert_rows
from shared.errors import LeadflowError, PermanentError, TransientError
from shared.flowconfig import LeadflowConfig, Recipient
from shared.gates import caps, duplicates, hours, pausing, steps
from shared.ids import new_id
from shared.leaddata import base_variables, recipient_results
from shared.messaging import (
    AsyncPublisher,
    DeliverEmail,
    DeliverHttp,
    FlowReply,
    LeadSubmitted,
    Message,
    RunAuction,
    StepCompleted,
    StepDue,
)
from shared.messaging.topology import delay_tier
from shared.metrics import FLOWS_COMPLETED
from shared.rules import evaluate
from shared.templates import render

logger = logging.getLogger(__name__)
#: A recipient's duplicate key taken by another transaction meanwhile: the batch again.
RACED_RETRY_SCHEDULE = (0.5, 1.0, 2.0)


@dataclass(slots=True)
class Outbound:
    """What the router publishes once its transaction has committed."""

    messages: list[Message] = field(default_factory=list)
    reply_to: str | None = None
    reply: FlowReply | None = None
    finished: tuple[str, str] | None = None  # (flow id, outcome) when the flow ended


async def publish_outbound(outbound: Outbound, publisher: AsyncPublisher) -> None:
    """Publish what a committed routing decided: hand-offs, and the answer to an intake
    process waiting on the lead."""
    if outbound.finished is not None:
        FLOWS_COMPLETED.labels(*outbound.finished).inc()
    for follow_up in outbound.messages:
        await publisher.publish(follow_up)
    if outbound.reply_to and outbound.reply:
        publisher.reply(outbound.reply_to, outbound.reply)


@dataclass(slots=True)
class RoutedLead:
    """The columns of a locked lead the router reads."""

    id: str
    flow_id: str
    source_id: str
    config_version: int
    received_at: datetime
    state: str
    price: Decimal
    fields: dict[str, Any]
    step_index: int
    waiting_event_id: str | None
    reply_to: str | None
    sold: bool | None  # a recipient bought it (the reports count it)


@dataclass(slots=True)
class StepEvent:
    """The columns of a lead's event the router reads (stored, or inserted by this run)."""

    id: str
    type: str
    recipient_id: str | None
    outcome: str | None
    reason: str | None
    price: Decimal | None
    started_at: datetime | None
    appended: dict[str, Any] | None = None
    parent_event_id: str | None = None  # an auction's post or ping: the auction's event


_LEADS: Table = Base.metadata.tables["leads"]
_EVENTS: Table = Base.metadata.tables["events"]
_DELIVERIES: Table = Base.metadata.tables["deliveries"]

_LOCK_LEADS = PerDialect(
    lambda one_of: (
        select(*(_LEADS.c[name] for name in RoutedLead.__dataclass_fields__))
        .where(one_of(_LEADS.c.id, "lead_ids"))
        .order_by(_LEADS.c.id)
        .with_for_update()
    )
)
# Read after the locks are held, in a statement of its own: PostgreSQL's read-committed
# snapshot is then one taken after the previous holder committed (a join under the lock
# would see the newest lead row beside older events).
_LEADS_EVENTS = PerDialect(
    lambda one_of: select(
        _EVENTS.c.lead_id, *(_EVENTS.c[name] for name in StepEvent.__dataclass_fields__)
    ).where(one_of(_EVENTS.c.lead_id, "lead_ids"))
)
# ``version`` as the ORM keeps it.
_UPDATE_LEADS = UpdateMany(_LEADS, "id", increment=("version",))
_UPDATE_EVENTS = UpdateMany(_EVENTS, "id")
_DELIVERY_STATUS = select(_DELIVERIES.c.status).where(
    _DELIVERIES.c.event_id == bindparam("event_id")
)
_INSERT_EVENTS = insert(_EVENTS)
_INSERT_DELIVERIES = insert(_DELIVERIES)


def _ms(start: datetime, end: datetime) -> int:
    return max(0, int((end - start).total_seconds() * 1000))


def _handoff(lead: RoutedLead, event: StepEvent, recipient: Recipient) -> Message:
    if recipient.kind == "http":
        return DeliverHttp(
            lead_id=lead.id, event_id=event.id, recipient_id=event.recipient_id or ""
        )
    return DeliverEmail(recipient_id=event.recipient_id or "", lead_id=lead.id, event_id=event.id)


def _lock_leads(connection: Connection, lead_ids: list[str]) -> dict[str, RoutedLead]:
    """The leads, locked in id order (so two routers never wait on each other in turn)."""
    rows = _LOCK_LEADS.execute(connection, {"lead_ids": sorted(lead_ids)})
    return {row.id: RoutedLead(*row) for row in rows}


def _events_of(connection: Connection, lead_ids: list[str]) -> dict[str, list[StepEvent]]:
    events: dict[str, list[StepEvent]] = {lead_id: [] for lead_id in lead_ids}
    for row in _LEADS_EVENTS.execute(connection, {"lead_ids": lead_ids}):
        events[row.lead_id].append(StepEvent(*row[1:]))
    return events


RouterMessage = LeadSubmitted | StepCompleted | StepDue


def route(
    session: Session, config_for: Any, messages: Sequence[RouterMessage]
) -> list[Outbound | BaseException]:
    """Apply a batch of leads and step results in one transaction: every lead read and
    locked at once, each message applied in order, every row written in one statement per
    table. Each message gets its ``Outbound``, or the error that concerns it alone."""
    connection = session.connection()
    lead_ids = list(dict.fromkeys(m.lead_id for m in messages))
    leads = _lock_leads(connection, lead_ids)
    events = _events_of(connection, list(leads))
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
    batch = _Batch()
    results: list[Outbound | BaseException] = []
    for message in messages:
        lead = leads.get(message.lead_id)
        try:
            if lead is None:
                raise PermanentError(f"unknown lead {message.lead_id}")
            writes = _Writes(lead={"key": lead.id}, held=held, gates=gates)
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
    writes = _Writes(lead={"key": lead.id}, held=held, gates=gates)
    outbound = _advance(lead, [source], config, writes)
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
    writes: _Writes,
) -> Outbound:
    if lead.state == "done":
        return Outbound()
    if lead.waiting_event_id is not None:
        return _republish_waiting(connection, lead, events, config_for(lead.config_version))
    if lead.state != "new":
        return Outbound()  # started already (a copy of its message)
    return _advance(lead, events, config_for(lead.config_version), writes)


def _resume(
    connection: Connection,
    config_for: Any,
    lead: RoutedLead,
    events: list[StepEvent],
    event_id: str,
    writes: _Writes,
) -> Outbound:
    if lead.state == "done":
        # A replayed delivery may have succeeded after the flow went on without it.
        _refresh_price(lead, events, writes)
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
        return _auction_resumed(config_for(lead.config_version), lead, events, step_event, writes)
    if step_event is None or step_event.outcome is None:
        raise PermanentError(f"step event {event_id} has no outcome yet")
    lead.sold = lead.sold or step_event.outcome == "success"
    lead.waiting_event_id = None
    lead.step_index += 1
    return _advance(lead, events, config_for(lead.config_version), writes)


def _due(
    config_for: Any,
    lead: RoutedLead,
    events: list[StepEvent],
    message: StepDue,
    writes: _Writes,
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
    return _advance(lead, events, config_for(lead.config_version), writes)


def _republish_waiting(
    connection: Connection, lead: RoutedLead, events: list[StepEvent], config: LeadflowConfig
) -> Outbound:
    """The hand-off the lead waits on, published again only while no delivery worker has
    taken it up (``queued``): a copy of a delivery already under way, or waiting in a retry
    tier, would send it ahead of the recipient's schedule."""
    event = next((e for e in events if e.id == lead.waiting_event_id), None)
    if event is None or event.recipient_id is None:
        return Outbound()
    status = connection.execute(_DELIVERY_STATUS, {"event_id": event.id}).scalar()
    if status != "queued":
        return Outbound()
    recipient = config.recipients[event.recipient_id]
    return Outbound(messages=[_handoff(lead, event, recipient)])


@dataclass(slots=True)
class _Writes:
    """What applying one message stores (added to its batch only if it succeeded)."""

    lead: dict[str, Any]  # the lead's changed columns, and ``key``: its id
    held: resubmits.Held | None = None  # the batch's recipient duplicate keys
    gates: steps.StepGates | None = None
    reopen: StepEvent | None = None  # a held step's event, run again as the same event
    auction: StepEvent | None = None  # the auction step's event, to go on with
    events: list[dict[str, Any]] = field(default_factory=list)
    updated: list[dict[str, Any]] = field(default_factory=list)  # events changed (``key``)
    deliveries: list[dict[str, Any]] = field(default_factory=list)
    source: dict[str, Any] | None = None  # the source event's changed columns and ``key``


@dataclass(slots=True)
class _Batch:
    """The rows of a batch, one statement per table and set of columns (events before
    deliveries: a delivery references its event). Updates of one row are merged, the
    later message's values winning."""

    events: list[dict[str, Any]] = field(default_factory=list)
    deliveries: list[dict[str, Any]] = field(default_factory=list)
    leads: dict[str, dict[str, Any]] = field(default_factory=dict)
    sources: dict[str, dict[str, Any]] = field(default_factory=dict)

    def add(self, writes: _Writes) -> None:
        self.events.extend(writes.events)
        for changed in writes.updated:
            self.sources.setdefault(changed["key"], {}).update(changed)
        self.deliveries.extend(writes.deliveries)
        if len(writes.lead) > 1:
            self.leads.setdefault(writes.lead["key"], {}).update(writes.lead)
        if writes.source is not None:
            self.sources.setdefault(writes.source["key"], {}).update(writes.source)

    def execute(self, connection: Connection) -> None:
        if self.events:
            insert_rows(connection, _INSERT_EVENTS, self.events)
        if self.deliveries:
            connection.execute(_INSERT_DELIVERIES, self.deliveries)
        _UPDATE_LEADS.execute(connection, list(self.leads.values()))
        _UPDATE_EVENTS.execute(connection, list(self.sources.values()))


def _new_event(
    writes: _Writes,
    events: list[StepEvent],
    lead_id: str,
    *,
    type: str,
    step: int | None,
    now: datetime,
    recipient_id: str | None = None,
    outcome: str | None = None,
    reason: str | None = None,
    event_id: str | None = None,
    parent_event_id: str | None = None,
    price: Decimal = Decimal(0),
    appended: dict[str, Any] | None = None,
) -> StepEvent:
    """A step's event: added to the lead's events and to the rows to insert (a held
    step's event, run again: changed in place)."""
    reopened = writes.reopen
    if reopened is not None and reopened.id == event_id:
        writes.reopen = None
        reopened.outcome, reopened.reason, reopened.started_at = outcome, reason, now
        writes.updated.append(
            {"key": reopened.id, "outcome": outcome, "reason": reason, "started_at": now}
        )
        return reopened
    event = StepEvent(
        event_id or new_id(), type, recipient_id, outcome, reason, price, now, appended
    )
    event.parent_event_id = parent_event_id
    row = event_row(
        id=event.id,
        lead_id=lead_id,
        type=type,
        started_at=now,
        step=step,
        recipient_id=recipient_id,
        outcome=outcome,
        reason=reason,
    )
    row.update(parent_event_id=parent_event_id, price=price)
    if appended is not None:
        row["appended"] = appended
    writes.events.append(row)
    events.append(event)
    return event


def _advance(
    lead: RoutedLead, events: list[StepEvent], config: LeadflowConfig, writes: _Writes
) -> Outbound:
    if lead.state == "new":
        lead.state = writes.lead["state"] = "routing"
    outbound = _run_steps(lead, events, config, writes)
    writes.lead["step_index"] = lead.step_index
    writes.lead["waiting_event_id"] = lead.waiting_event_id
    writes.lead["sold"] = bool(lead.sold)
    return outbound


def _run_steps(
    lead: RoutedLead, events: list[StepEvent], config: LeadflowConfig, writes: _Writes
) -> Outbound:
    flow = config.flows[lead.flow_id]
    received_at = as_utc(lead.received_at) or utcnow()
    variables = base_variables(
        lead_id=lead.id,
        flow_id=lead.flow_id,
        source_id=lead.source_id,
        received_at=received_at,
        fields=lead.fields,
    )
    variables.update(
        recipient_results(
            (e.recipient_id, e.outcome, e.reason, e.price, e.appended)
            for e in events
            if e.type == "recipient"
        )
    )
    index = lead.step_index
    while index < len(flow.steps):
        step = flow.steps[index]
        now = utcnow()
        if step.filter is not None:
            matched = evaluate(step.filter.rule_set, variables)
            reason = (
                render(step.filter.reason, variables) if matched and step.filter.reason else None
            )
            _new_event(
                writes,
                events,
                lead.id,
                type="filter",
                step=index,
                now=now,
                outcome="stop" if matched else "continue",
                reason=reason,
            )
            if matched:
                lead.step_index = index
                return _finish(lead, events, step.filter.outcome, reason, writes)
            index += 1
            continue
        if step.auction is not None:
            outbound = _auction_step(lead, events, config, writes, index, variables, now)
            if outbound is not None:
                return outbound
            index += 1
            continue
        recipient_id = step.recipient or ""
        recipient = config.recipients[recipient_id]
        event_id = writes.reopen.id if writes.reopen is not None else new_id()
        gates = writes.gates
        skipped = None
        taken: list[caps.Bound] | None = []
        if step.criteria is not None and not evaluate(step.criteria, variables):
            skipped = "Recipient criteria not met"
        elif gates is not None and recipient_id in gates.paused:
            skipped = pausing.REASON
        elif gates is not None and not hours.is_open(
            recipient.schedule, recipient.timezone, gates.counters.now
        ):
            due = hours.next_opening(recipient.schedule, recipient.timezone, gates.counters.now)
            if recipient.when_closed != "hold" or due is None:
                skipped = hours.CLOSED_REASON
            else:
                return _hold(lead, events, writes, index, recipient_id, event_id, now, due)
        elif (
            gates is not None and (taken := gates.take(recipient_id, recipient, variables)) is None
        ):
            skipped = caps.REASON
        elif _duplicate_for(recipient_id, recipient, lead, event_id, writes):
            if gates is not None:
                gates.counters.give_back(taken or [])
            skipped = duplicates.REASON
        if skipped is not None:
            _new_event(
                writes,
                events,
                lead.id,
                type="recipient",
                step=index,
                now=now,
                recipient_id=recipient_id,
                outcome="skip",
                reason=skipped,
                event_id=event_id,
            )
            index += 1
            continue
        waits = _waits(recipient)
        event = _send(
            writes,
            events,
            lead.id,
            recipient_id,
            recipient,
            taken or [],
            now,
            step=index,
            event_id=event_id,
        )
        if waits:
            lead.step_index = index
            lead.waiting_event_id = event.id
            logger.info(
                "lead handed to %s", recipient_id, extra={"lead_id": lead.id, "event_id": event.id}
            )
            return Outbound(messages=[_handoff(lead, event, recipient)])
        variables[recipient_id] = {"outcome": "success", "reason": None, "price": Decimal(0)}
        logger.info(
            "lead pending for %s", recipient_id, extra={"lead_id": lead.id, "event_id": event.id}
        )
        index += 1
    lead.step_index = index
    return _finish(lead, events, "success", None, writes)


def _waits(recipient: Recipient) -> bool:
    """Whether the step waits on a delivery worker (HTTP, real-time email); otherwise the
    lead is left pending for a batch or a download and the flow goes on."""
    return recipient.kind == "http" or (
        recipient.email is not None and recipient.email.mode == "realtime"
    )


def _send(
    writes: _Writes,
    events: list[StepEvent],
    lead_id: str,
    recipient_id: str,
    recipient: Recipient,
    taken: Sequence[caps.Bound],
    now: datetime,
    *,
    step: int | None,
    event_id: str,
    parent_event_id: str | None = None,
    price: Decimal = Decimal(0),
    appended: dict[str, Any] | None = None,
) -> StepEvent:
    """A step that sends the lead to a recipient (or an auction's post): its event, and
    its delivery holding the cap slots ``taken`` (``queued`` for a worker, or ``pending``)."""
    waits = _waits(recipient)
    event = _new_event(
        writes,
        events,
        lead_id,
        type="recipient",
        step=step,
        now=now,
        recipient_id=recipient_id,
        outcome=None if waits else "success",
        event_id=event_id,
        parent_event_id=parent_event_id,
        price=price,
        appended=appended,
    )
    writes.deliveries.append(
        {
            "event_id": event.id,
            "lead_id": lead_id,
            "recipient_id": recipient_id,
            "kind": recipient.kind,
            "status": "queued" if waits else "pending",
            "attempts": 0,
            "cap_holds": caps.holding(taken) if waits else None,
            "created_at": now,
            "updated_at": now,
        }
    )
    return event


def _hold(
    lead: RoutedLead,
    events: list[StepEvent],
    writes: _Writes,
    index: int,
    recipient_id: str,
    event_id: str,
    now: datetime,
    due: datetime,
) -> Outbound:
    """A closed recipient with ``when_closed: hold``: the step's event is ``pending`` and
    the lead waits on it until ``due`` (a ``StepDue`` in the router's delay tiers)."""
    event = _new_event(
        writes,
        events,
        lead.id,
        type="recipient",
        step=index,
        now=now,
        recipient_id=recipient_id,
        outcome="pending",
        reason=hours.CLOSED_REASON,
        event_id=event_id,
    )
    lead.step_index = index
    lead.waiting_event_id = event.id
    logger.info(
        "%s is closed; step held until %s",
        recipient_id,
        due.isoformat(),
        extra={"lead_id": lead.id, "event_id": event.id},
    )
    return Outbound(messages=[StepDue(lead_id=lead.id, event_id=event.id, due_at=due.isoformat())])


def _duplicate_for(
    recipient_id: str, recipient: Recipient, lead: RoutedLead, event_id: str, writes: _Writes
) -> bool:
    """Whether the recipient holds a key of this lead (it skips the step); if not, the
    lead's keys are now held for it under the step's event."""
    if recipient.duplicates is None or writes.held is None:
        return False
    keys = duplicates.recipient_keys(recipient_id, recipient.duplicates, lead.fields)
    if not keys:
        return False
    writes.held.read(keys)  # read with the batch's already, unless routed alone
    (earlier,) = writes.held.take([(event_id, keys)])
    if earlier is None:
        return False
    logger.info(
        "%s already has this lead (step %s); skipped",
        recipient_id,
        earlier,
        extra={"lead_id": lead.id},
    )
    return True


def _accepted_price(events: list[StepEvent]) -> Decimal:
    accepted = (e.price or 0 for e in events if e.type == "recipient" and e.outcome == "success")
    return Decimal(sum(accepted, Decimal(0)))


def _refresh_price(lead: RoutedLead, events: list[StepEvent], writes: _Writes) -> None:
    price = _accepted_price(events)
    if price == lead.price:
        return
    lead.price = writes.lead["price"] = price
    source = next((e for e in events if e.type == "source"), None)
    if source is not None:
        source.price = price
        writes.source = {"key": source.id, "price": price}
    logger.info("lead price is now %g after a late step result", price, extra={"lead_id": lead.id})


def _finish(
    lead: RoutedLead, events: list[StepEvent], outcome: str, reason: str | None, writes: _Writes
) -> Outbound:
    now = utcnow()
    price = _accepted_price(events)
    lead.state, lead.price = "done", price
    lead.waiting_event_id = None
    writes.lead.update(state="done", outcome=outcome, reason=reason, price=price, completed_at=now)
    source = next(e for e in events if e.type == "source")
    source.outcome, source.reason, source.price = outcome, reason, price
    writes.source = {
        "key": source.id,
        "outcome": outcome,
        "reason": reason,
        "price": price,
        "completed_at": now,
        "ms": _ms(as_utc(source.started_at) or now, now),
        "steps_processed": sum(1 for e in events if e.type in ("filter", "recipient")),
    }
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


# --- auction steps (SPEC section 12) ---------------------------------------------------


def _auction_step(
    lead: RoutedLead,
    events: list[StepEvent],
    config: LeadflowConfig,
    writes: _Writes,
    index: int,
    variables: dict[str, Any],
    now: datetime,
) -> Outbound | None:
    """An auction step reached, or gone on with (``writes.auction``): its bids asked for
    (the lead waits on the step's event), its next bid posted (the lead waits on the
    post), or its end (None: the flow goes on)."""
    step = config.flows[lead.flow_id].steps[index]
    assert step.auction is not None
    event = writes.auction
    writes.auction = None
    if event is None:
        if step.criteria is not None and not evaluate(step.criteria, variables):
            _new_event(
                writes,
                events,
                lead.id,
                type="auction",
                step=index,
                now=now,
                outcome="skip",
                reason="Recipient criteria not met",
            )
            return None
        event = _new_event(writes, events, lead.id, type="auction", step=index, now=now)
    gates = writes.gates
    if gates is None:
        raise PermanentError("an auction step is run with its transaction's gates")
    connection = gates.counters.connection
    bids = pings.step_bids(pings.bids_of_lead(connection, lead.id), index)
    if not bids and not (event.appended or {}).get("collected"):
        lead.step_index, lead.waiting_event_id = index, event.id
        logger.info("auction: asking the bidders", extra={"lead_id": lead.id, "event_id": event.id})
        return Outbound(messages=[RunAuction(lead_id=lead.id, event_id=event.id)])
    tried = {e.recipient_id for e in events if e.parent_event_id == event.id}
    for bid in auction.rank(bids, step.auction.floor):
        recipient = config.recipients.get(bid.recipient_id)
        if bid.recipient_id in tried or recipient is None:
            continue
        if bid.recipient_id in gates.paused or not hours.is_open(
            recipient.schedule, recipient.timezone, gates.counters.now
        ):
            continue
        taken = gates.take(bid.recipient_id, recipient, variables)
        if taken is None:
            continue
        post_id = new_id()
        if _duplicate_for(bid.recipient_id, recipient, lead, post_id, writes):
            gates.counters.give_back(taken)
            continue
        waits = _waits(recipient)
        post = _send(
            writes,
            events,
            lead.id,
            bid.recipient_id,
            recipient,
            taken,
            now,
            step=None,
            event_id=post_id,
            parent_event_id=event.id,
            price=bid.amount,
            appended={"ping": {"reference": bid.reference}} if bid.reference else None,
        )
        logger.info(
            "auction: posting to %s at its bid of %s",
            bid.recipient_id,
            bid.amount,
            extra={"lead_id": lead.id, "event_id": post.id},
        )
        if waits:
            lead.step_index, lead.waiting_event_id = index, post.id
            return Outbound(messages=[_handoff(lead, post, recipient)])
        _end_auction(writes, event, bids, "success", None, bid.recipient_id, bid.amount)
        return None
    _end_auction(writes, event, bids, "failure", auction.NO_BUYER_REASON, None, Decimal(0))
    return None


def _auction_resumed(
    config: LeadflowConfig,
    lead: RoutedLead,
    events: list[StepEvent],
    step_event: StepEvent,
    writes: _Writes,
) -> Outbound:
    """The bids of an auction step are in, or one of its posts ended: a sale ends the
    step; anything else goes on with the next bid."""
    auction_event = step_event
    if step_event.type != "auction":
        parent = next((e for e in events if e.id == step_event.parent_event_id), None)
        if parent is None:
            raise PermanentError(f"auction post {step_event.id} has no auction step event")
        auction_event = parent
        if step_event.outcome is None:
            raise PermanentError(f"step event {step_event.id} has no outcome yet")
    lead.waiting_event_id = None
    if step_event.type == "recipient" and step_event.outcome == "success":
        lead.sold = True
        gates = writes.gates
        bids = (
            pings.step_bids(pings.bids_of_lead(gates.counters.connection, lead.id), lead.step_index)
            if gates is not None
            else []
        )
        price = step_event.price or Decimal(0)
        _end_auction(writes, auction_event, bids, "success", None, step_event.recipient_id, price)
        lead.step_index += 1
    else:
        writes.auction = auction_event
    return _advance(lead, events, config, writes)


def _end_auction(
    writes: _Writes,
    event: StepEvent,
    bids: Sequence[auction.Bid],
    outcome: str,
    reason: str | None,
    recipient_id: str | None,
    price: Decimal,
) -> None:
    """The auction step's event: the buyer, its price and the bids; or ``no buyer``."""
    now = utcnow()
    event.outcome, event.reason, event.recipient_id, event.price = (
        outcome,
        reason,
        recipient_id,
        price,
    )
    event.appended = {**(event.appended or {}), "bids": [bid.to_dict() for bid in bids]}
    writes.updated.append(
        {
            "key": event.id,
            "outcome": outcome,
            "reason": reason,
            "recipient_id": recipient_id,
            "price": price,
            "appended": event.appended,
            "completed_at": now,
            "ms": _ms(as_utc(event.started_at) or now, now),
        }
    )
    logger.info(
        "auction ended: %s%s",
        outcome,
        f" to {recipient_id} at {price}" if recipient_id else f" ({reason})",
        extra={"event_id": event.id},
    )
