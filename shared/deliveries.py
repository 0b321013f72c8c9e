"""A recipient step's record, shared by the delivery services: final statuses and the
step's completion (its event and its delivery, together)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, literal_column, select, update
from sqlalchemy.orm import Session

from shared.db.engine import as_utc, utcnow
from shared.db.models import Delivery, Event

FINAL = frozenset({"delivered", "rejected", "error", "returned", "converted"})
STATUS_BY_OUTCOME = {"success": "delivered", "failure": "rejected", "error": "error"}

_deliveries = cast(Table, Delivery.__table__)
_events = cast(Table, Event.__table__)
# Literal values, so the statement compiles once (an expanding IN parameter is re-rendered
# at every execution).
_NOT_FINAL = _deliveries.c.status.not_in([literal_column(f"'{s}'") for s in sorted(FINAL)])


def complete(
    session: Session,
    event_id: str,
    *,
    outcome: str,
    reason: str | None,
    price: float = 0.0,
    appended: dict[str, Any] | None = None,
    dead: bool = False,
    started_at: datetime | None = None,
) -> bool:
    """Record the step's outcome on its event and delivery; False when already final.

    Core statements, one round trip each: the delivery moves to its final status only if
    it is not final yet (``UPDATE ... RETURNING``, so two workers cannot both complete
    it), then its event gets the outcome. ``started_at`` (the event's, when the caller
    has it) saves reading it back. Objects of this delivery already loaded in ``session``
    are not refreshed; pending changes are flushed first.
    """
    session.flush()
    now = utcnow()
    values: dict[str, Any] = {
        "status": STATUS_BY_OUTCOME[outcome],
        "updated_at": now,
        "dead_lettered": dead,
    }
    if outcome == "success":
        values["delivered_at"] = now
    attempts = session.execute(
        update(_deliveries)
        .where(_deliveries.c.event_id == event_id, _NOT_FINAL)
        .values(values)
        .returning(_deliveries.c.attempts)
    ).scalar()
    if attempts is None:
        return False
    if started_at is None:
        started_at = session.execute(
            select(_events.c.started_at).where(_events.c.id == event_id)
        ).scalar()
    started = as_utc(started_at) or now
    session.execute(
        update(_events)
        .where(_events.c.id == event_id)
        .values(
            outcome=outcome,
            reason=reason,
            price=price,
            appended=appended or None,
            completed_at=now,
            attempts=attempts,
            ms=max(0, int((now - started).total_seconds() * 1000)),
        )
    )
    return True
