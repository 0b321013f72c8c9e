"""What routing reads and writes: the locked lead, its events, the rows one message adds
(``Writes``) and the statements a whole batch runs once (``Batch``), and what is
published after the commit (``Outbound``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, Table, bindparam, insert, select

from shared import resubmits
from shared.db.models import Base
from shared.db.queries import PerDialect, UpdateMany
from shared.db.rows import event_row, insert_rows
from shared.flowconfig import Recipient
from shared.gates import steps
from shared.ids import new_id
from shared.messaging import (
    AsyncPublisher,
    DeliverEmail,
    DeliverHttp,
    FlowReply,
    Message,
)
from shared.metrics import FLOWS_COMPLETED


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
    ping_id: str | None  # the ping it was posted against: its auctions' bids are the ping's


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

DELIVERY_STATUS = select(_DELIVERIES.c.status).where(
    _DELIVERIES.c.event_id == bindparam("event_id")
)

_INSERT_EVENTS = insert(_EVENTS)

_INSERT_DELIVERIES = insert(_DELIVERIES)


def ms(start: datetime, end: datetime) -> int:
    return max(0, int((end - start).total_seconds() * 1000))


def handoff(lead: RoutedLead, event: StepEvent, recipient: Recipient) -> Message:
    if recipient.kind == "http":
        return DeliverHttp(
            lead_id=lead.id, event_id=event.id, recipient_id=event.recipient_id or ""
        )
    return DeliverEmail(recipient_id=event.recipient_id or "", lead_id=lead.id, event_id=event.id)


def lock_leads(connection: Connection, lead_ids: list[str]) -> dict[str, RoutedLead]:
    """The leads, locked in id order (so two routers never wait on each other in turn)."""
    rows = _LOCK_LEADS.execute(connection, {"lead_ids": sorted(lead_ids)})
    return {row.id: RoutedLead(*row) for row in rows}


def events_of(connection: Connection, lead_ids: list[str]) -> dict[str, list[StepEvent]]:
    events: dict[str, list[StepEvent]] = {lead_id: [] for lead_id in lead_ids}
    for row in _LEADS_EVENTS.execute(connection, {"lead_ids": lead_ids}):
        events[row.lead_id].append(StepEvent(*row[1:]))
    return events


@dataclass(slots=True)
class Writes:
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
class Batch:
    """The rows of a batch, one statement per table and set of columns (events before
    deliveries: a delivery references its event). Updates of one row are merged, the
    later message's values winning."""

    events: list[dict[str, Any]] = field(default_factory=list)
    deliveries: list[dict[str, Any]] = field(default_factory=list)
    leads: dict[str, dict[str, Any]] = field(default_factory=dict)
    sources: dict[str, dict[str, Any]] = field(default_factory=dict)

    def add(self, writes: Writes) -> None:
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


def new_event(
    writes: Writes,
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
        reopened.price = price
        writes.updated.append(
            {
                "key": reopened.id,
                "outcome": outcome,
                "reason": reason,
                "started_at": now,
                "price": price,
            }
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
