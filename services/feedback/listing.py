"""Operators' reconciliation view of received feedback: ``leadflow feedback list``."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

from shared.db.engine import SessionFactory
from shared.db.models import Event
from shared.db.queries import listed, where_given


@dataclass(frozen=True, slots=True)
class FeedbackRow:
    received_at: datetime
    lead_id: str
    event_id: str | None  # the step's event the feedback was posted with
    recipient_id: str | None
    kind: str | None
    outcome: str | None
    reason: str | None

    def line(self) -> str:
        return (
            f"{self.received_at.isoformat(timespec='seconds'):<25} {self.lead_id:<24} "
            f"{self.event_id or '-':<24} {self.recipient_id or '-':<16} "
            f"{self.kind or '-':<10} {self.outcome or '-':<8} {self.reason or ''}"
        )


HEADER = (
    f"{'received at':<25} {'lead':<24} {'event':<24} {'recipient':<16} "
    f"{'type':<10} {'outcome':<8} reason"
)


def received_feedback(
    factory: SessionFactory,
    *,
    recipient: str | None = None,
    since: datetime | None = None,
    accepted: bool | None = None,
) -> list[FeedbackRow]:
    """Every feedback request with a known event id, oldest first; ``accepted`` True keeps
    the accepted ones, False the others (refused or in error)."""
    query = where_given(
        select(Event).where(Event.type == "feedback-received").order_by(Event.started_at, Event.id),
        (Event.recipient_id, recipient),
    )
    if since is not None:
        query = query.where(Event.started_at >= since)
    if accepted is True:
        query = query.where(Event.outcome == "success")
    elif accepted is False:
        query = query.where(Event.outcome != "success")
    return [
        FeedbackRow(
            received_at=e.started_at,
            lead_id=e.lead_id,
            event_id=e.parent_event_id,
            recipient_id=e.recipient_id,
            kind=(e.appended or {}).get("type"),
            outcome=e.outcome,
            reason=e.reason,
        )
        for e in listed(factory, query, utc=["started_at"])
    ]
