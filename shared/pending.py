"""A recipient's pending deliveries, each taken once: by an email batch or a manual download.

Deliveries of batch-email and manual recipients wait as ``pending`` until a batch takes
them. Taking is one statement (``UPDATE ... WHERE status = 'pending' AND batch_id IS
NULL``, rows locked with ``FOR UPDATE SKIP LOCKED`` on PostgreSQL; SQLite's write lock
serializes), so a lead is never in two batches, whether an email scheduler, ``leadflow
batches send`` or ``leadflow leads deliver`` asks for it.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import ColumnElement, Select, select, update
from sqlalchemy.orm import Session

from shared.db.engine import SessionFactory, utcnow
from shared.db.models import Delivery, Event, Lead
from shared.money import ledger
from shared.money.pricing import owed


def _untaken(recipient_id: str, created_by: datetime | None) -> list[ColumnElement[bool]]:
    """The recipient's pending deliveries that no batch took (created by ``created_by``)."""
    conditions = [
        Delivery.recipient_id == recipient_id,
        Delivery.status == "pending",
        Delivery.batch_id.is_(None),
    ]
    if created_by is not None:
        conditions.append(Delivery.created_at <= created_by)
    return conditions


def assign_pending(
    session: Session,
    recipient_id: str,
    batch_id: str,
    *,
    delivered_at: datetime | None = None,
    created_by: datetime | None = None,
    price: Decimal | None = None,
) -> int:
    """Give the recipient's untaken pending deliveries (those created by ``created_by``,
    when given) to the batch, and mark them delivered when ``delivered_at`` is given (a
    manual download: the leads are sold, each at ``price``). Returns how many it took."""
    now = utcnow()
    untaken = _untaken(recipient_id, created_by)
    lockable = select(Delivery.event_id).where(*untaken).with_for_update(skip_locked=True)
    values: dict[str, Any] = {"batch_id": batch_id, "updated_at": now}
    if delivered_at is not None:
        values.update(status="delivered", delivered_at=delivered_at)
    result = session.execute(
        update(Delivery)
        .where(Delivery.event_id.in_(lockable.scalar_subquery()), *untaken)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    if delivered_at is not None:
        mark_sold(session, batch_id, price, delivered_at)
    return int(result.rowcount)  # type: ignore[attr-defined]


def mark_sold(session: Session, batch_id: str, price: Decimal | None, at: datetime) -> None:
    """The leads of a batch just delivered are sold (what the reports count), and each
    owes the recipient its revenue: the price its step was sold at as it was routed (an
    auction's post its bid, any other the recipient's price then), else ``price`` (leads
    routed before steps carried it). A ``revenue`` row per lead that owes something."""
    session.execute(
        update(Lead)
        .where(Lead.id.in_(select(Delivery.lead_id).where(Delivery.batch_id == batch_id)))
        .values(sold=True)
        .execution_options(synchronize_session=False)
    )
    sold = session.execute(
        select(
            Delivery.event_id,
            Delivery.recipient_id,
            Lead.id,
            Lead.flow_id,
            Lead.source_id,
            Lead.received_at,
            Event.price,
        )
        .join(Lead, Lead.id == Delivery.lead_id)
        .join(Event, Event.id == Delivery.event_id)
        .where(Delivery.batch_id == batch_id)
    )
    entries = []
    for event_id, recipient_id, lead_id, flow_id, source_id, received_at, priced in sold:
        amount = owed(priced, price)
        if amount > 0:
            entries.append(
                ledger.entry(
                    ledger.REVENUE,
                    ledger.LeadOf(lead_id, flow_id, source_id, received_at),
                    "recipient",
                    recipient_id,
                    amount,
                    at,
                    event_id,
                )
            )
    ledger.write(session.connection(), entries)


def has_pending(
    sessions: SessionFactory, recipient_id: str, created_by: datetime | None = None
) -> bool:
    with sessions() as session:
        found = session.scalar(
            select(Delivery.event_id).where(*_untaken(recipient_id, created_by)).limit(1)
        )
        return found is not None


def leads_of(batch_id: str) -> Select[Any]:
    """The fields of a batch's leads, oldest first."""
    return (
        select(Lead.fields)
        .join(Delivery, Delivery.lead_id == Lead.id)
        .where(Delivery.batch_id == batch_id)
        .order_by(Lead.received_at, Lead.id)
    )
