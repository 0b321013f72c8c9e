"""Operators' queries over the record: parked messages."""

from __future__ import annotations

from sqlalchemy import select

from shared.db.engine import SessionFactory, as_utc
from shared.db.models import DeadLetter


def parked_messages(
    factory: SessionFactory,
    *,
    queue: str | None = None,
    recipient: str | None = None,
    lead_id: str | None = None,
) -> list[DeadLetter]:
    query = select(DeadLetter).where(DeadLetter.state == "parked").order_by(DeadLetter.parked_at)
    if queue:
        query = query.where(DeadLetter.queue == queue)
    if recipient:
        query = query.where(DeadLetter.recipient_id == recipient)
    if lead_id:
        query = query.where(DeadLetter.lead_id == lead_id)
    with factory() as session:
        rows = list(session.scalars(query))
    for row in rows:
        row.parked_at = as_utc(row.parked_at) or row.parked_at
    return rows
