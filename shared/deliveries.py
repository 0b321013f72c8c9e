"""A recipient step's record, shared by the delivery services: final statuses and the
step's completion (its event and its delivery, together)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from shared.db.engine import as_utc, utcnow
from shared.db.models import Delivery, Event

FINAL = frozenset({"delivered", "rejected", "error", "returned", "converted"})
STATUS_BY_OUTCOME = {"success": "delivered", "failure": "rejected", "error": "error"}


def complete(
    session: Session,
    event_id: str,
    *,
    outcome: str,
    reason: str | None,
    price: float = 0.0,
    appended: dict[str, Any] | None = None,
    dead: bool = False,
) -> bool:
    """Record the step's outcome on its event and delivery; False when already final."""
    delivery = session.get(Delivery, event_id, with_for_update=True)
    event = session.get(Event, event_id)
    if delivery is None or event is None or delivery.status in FINAL:
        return False
    now = utcnow()
    delivery.status = STATUS_BY_OUTCOME[outcome]
    delivery.updated_at = now
    delivery.dead_lettered = dead
    if outcome == "success":
        delivery.delivered_at = now
    event.outcome, event.reason, event.price = outcome, reason, price
    event.appended = appended or None
    event.completed_at = now
    event.attempts = delivery.attempts
    event.ms = max(0, int((now - (as_utc(event.started_at) or now)).total_seconds() * 1000))
    return True
