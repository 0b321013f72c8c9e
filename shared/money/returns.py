"""Returns (SPEC section 15): a buyer's accepted return, its approval and what it does to
the money.

An accepted return (``services.feedback``) is a row of ``returns``: ``approved`` at once
(``approval: auto``) or ``requested`` (``manual``: the delivery waits as
``return requested`` for ``leadflow returns approve|reject``, or the console, which call
the functions here). On approval the delivery becomes ``returned``, a ``return`` row
reverses the revenue booked for that sale, with the source's ``chargeback_returns`` a
``chargeback`` row reverses the lead's cost (once per lead), and the return is forwarded
to the source (``FeedbackAccepted`` through the outbox). A rejected return puts the
delivery back to ``delivered``. ``max_percent``: a recipient's returns in a calendar month
(in its time zone) may not pass that share of the leads it bought that month, counting
the return asked for.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, Table, func, select, update
from sqlalchemy.orm import Session

from shared import deliveries, outbox
from shared.db.engine import iso_utc
from shared.db.models import Base, Delivery, Event, Lead, ReturnRequest
from shared.db.queries import from_key
from shared.errors import NotFound, UsageError
from shared.flowconfig import LeadflowConfig, Recipient
from shared.gates.caps import window_of
from shared.messaging import FeedbackAccepted
from shared.money import ledger
from shared.outbox import Outgoing

REQUESTED, APPROVED, REJECTED = "requested", "approved", "rejected"
_RETURNS: Table = Base.metadata.tables["returns"]
_DELIVERIES: Table = Base.metadata.tables["deliveries"]
_LEDGER: Table = Base.metadata.tables["ledger"]


def over_limit(
    connection: Connection,
    recipient: Recipient | None,
    recipient_id: str,
    max_percent: float,
    now: datetime,
) -> bool:
    """Whether one more return would pass ``max_percent`` of the leads the recipient
    bought this calendar month. The recipient's returns are decided one at a time (on
    PostgreSQL a transaction lock per recipient, held to the commit; SQLite's writer
    holds the whole database already), so concurrent returns cannot all pass."""
    if connection.dialect.name == "postgresql":
        connection.execute(
            select(func.pg_advisory_xact_lock(func.hashtext(f"leadflow-returns:{recipient_id}")))
        )
    start = window_of("month", recipient.timezone if recipient else "UTC", now).start
    returned = connection.execute(
        select(func.count()).where(
            _RETURNS.c.recipient_id == recipient_id,
            _RETURNS.c.status.in_((REQUESTED, APPROVED)),
            _RETURNS.c.requested_at >= start,
        )
    ).scalar_one()
    bought = connection.execute(
        select(func.count()).where(
            _DELIVERIES.c.recipient_id == recipient_id,
            _DELIVERIES.c.status.in_(deliveries.SOLD),
            _DELIVERIES.c.delivered_at >= start,
        )
    ).scalar_one()
    return (returned + 1) * 100 > Decimal(str(max_percent)) * bought


def request(
    session: Session,
    config: LeadflowConfig,
    lead: Lead,
    event: Event,
    return_id: str,
    reason: str | None,
    now: datetime,
    *,
    approve: bool,
) -> Outgoing | None:
    """Record an accepted return of the step ``event``'s delivery (its row locked by the
    caller): approved at once (what to publish: the forward to the source), or waiting."""
    session.execute(
        _RETURNS.insert().values(
            id=return_id,
            lead_id=lead.id,
            event_id=event.id,
            recipient_id=event.recipient_id or "",
            reason=reason,
            status=REQUESTED,
            requested_at=now,
        )
    )
    if approve:
        return _approve(session, config, return_id, now)
    _move(session, event.id, deliveries.Status.RETURN_REQUESTED, now)
    return None


def approve(session: Session, config_for: Any, return_id: str, now: datetime) -> Outgoing:
    """An operator approves a waiting return (``leadflow returns approve``)."""
    wanted = _waiting(session, return_id)
    lead = session.get(Lead, wanted.lead_id)
    assert lead is not None
    return _approve(session, config_for(lead.config_version), return_id, now)


def reject(session: Session, return_id: str, reason: str, now: datetime) -> None:
    """An operator refuses a waiting return: the delivery is ``delivered`` again."""
    wanted = _waiting(session, return_id)
    _move(session, wanted.event_id, deliveries.Status.DELIVERED, now)
    session.execute(
        update(_RETURNS)
        .where(_RETURNS.c.id == return_id)
        .values(status=REJECTED, decided_at=now, decision_reason=reason)
    )


def listing(
    session: Session,
    status: str | None = None,
    *,
    before: str | None = None,
    limit: int | None = None,
) -> list[dict[str, Any]]:
    """Returns, newest first (``leadflow returns list``: all of them; the console: a page
    of ``limit`` from just past the return ``before``)."""
    query = select(ReturnRequest)
    if status:
        query = query.where(ReturnRequest.status == status)
    query = from_key(
        query, session, ReturnRequest.requested_at, ReturnRequest.id, before, newest_first=True
    )
    if limit is not None:
        query = query.limit(limit)
    return [
        {
            "id": r.id,
            "lead_id": r.lead_id,
            "event_id": r.event_id,
            "recipient": r.recipient_id,
            "reason": r.reason,
            "status": r.status,
            "requested_at": iso_utc(r.requested_at),
            "decided_at": iso_utc(r.decided_at),
            "decision_reason": r.decision_reason,
        }
        for r in session.scalars(query)
    ]


def _waiting(session: Session, return_id: str) -> ReturnRequest:
    found = session.get(ReturnRequest, return_id, with_for_update=True)
    if found is None:
        raise NotFound(f"no return {return_id}")
    if found.status != REQUESTED:
        raise UsageError(f"return {return_id} is {found.status} already")
    return found


def _move(session: Session, event_id: str, status: deliveries.Status, now: datetime) -> None:
    delivery = session.get(Delivery, event_id, with_for_update=True)
    if delivery is None or not deliveries.can_move(delivery.status, status):
        current = delivery.status if delivery else "missing"
        raise UsageError(f"delivery {event_id} cannot go from {current} to {status}")
    session.execute(
        update(Delivery).where(Delivery.event_id == event_id).values(status=status, updated_at=now)
    )


def _approve(session: Session, config: LeadflowConfig, return_id: str, now: datetime) -> Outgoing:
    wanted = session.get(ReturnRequest, return_id)
    assert wanted is not None
    _move(session, wanted.event_id, deliveries.Status.RETURNED, now)
    session.execute(
        update(_RETURNS).where(_RETURNS.c.id == return_id).values(status=APPROVED, decided_at=now)
    )
    lead = session.get(Lead, wanted.lead_id, with_for_update=True)  # one chargeback a lead
    assert lead is not None
    connection = session.connection()
    of = ledger.LeadOf(lead.id, lead.flow_id, lead.source_id, lead.received_at)
    session.execute(update(Lead).where(Lead.id == lead.id).values(returned=True))
    rows = []
    sold = _sum(connection, _LEDGER.c.event_id == wanted.event_id, (ledger.REVENUE, ledger.RETURN))
    if sold > 0:
        rows.append(
            ledger.entry(
                ledger.RETURN, of, "recipient", wanted.recipient_id, sold, now, wanted.event_id
            )
        )
    source = config.flows[lead.flow_id].sources.get(lead.source_id)
    if source is not None and source.chargeback_returns:
        party = ledger.source_party(lead.flow_id, lead.source_id)
        paid = _sum(
            connection,
            (_LEDGER.c.lead_id == lead.id) & (_LEDGER.c.party_type == "source"),
            (ledger.COST, ledger.CHARGEBACK),
        )
        if paid > 0:
            rows.append(ledger.entry(ledger.CHARGEBACK, of, "source", party, paid, now))
    ledger.write(connection, rows)
    return outbox.store(
        session,
        FeedbackAccepted(lead_id=lead.id, event_id=wanted.event_id, feedback_event_id=return_id),
        now,
    )


def _sum(connection: Connection, where: Any, kinds: tuple[str, ...]) -> Decimal:
    """What is still owed: the charges of ``kinds[0]`` less their reversals."""
    total = connection.execute(
        select(func.coalesce(func.sum(_LEDGER.c.amount), 0)).where(where, _LEDGER.c.kind.in_(kinds))
    ).scalar_one()
    return Decimal(str(total)).quantize(Decimal("0.01"))
