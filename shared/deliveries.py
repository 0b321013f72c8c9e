"""A recipient step's delivery: its statuses, the moves between them, the one claim.

::

    queued ──claim──> sending ──answer──> delivered | rejected | error
      ^                 │  ^                  │
      │                 │  └─claim── retrying <┘ (a transient failure; next attempt later)
      │ (replay)        └──────────────> retrying
    error (parked)                      delivered ──feedback──> returned | converted
    pending ──(a batch or a download takes it)──> delivered | error

A delivery is *claimed* before anything is sent (``claim``): one conditional move to
``sending`` with a lease (the request's timeout plus a margin), stamped with who holds it
(``claimed_by``: the worker process and its message). While the lease runs, a second copy
of the message (RabbitMQ hands out again what a worker held when its connection
dropped) is ``Busy`` and waits; the holder itself, coming back with the same message
after a failure, takes it again at once. A lease that lapses (the worker died) lets the
next copy send it. A batch of pending leads (an email batch, a manual download) is taken
as a whole by the batch's own row (``services.email_delivery.batches``).

``complete`` records the outcome on the delivery and the step's event together, once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, cast

from sqlalchemy import Table, literal_column, select, update
from sqlalchemy.orm import Session

from shared.db.engine import as_utc, utcnow
from shared.db.models import Delivery, DeliveryAttempt, Event
from shared.errors import Busy, PermanentError


class Status(StrEnum):
    QUEUED = "queued"  # handed to a delivery queue; no worker holds it
    SENDING = "sending"  # in flight: a worker holds it under a lease
    RETRYING = "retrying"  # an attempt failed; the next one waits in a retry tier
    PENDING = "pending"  # waits for an email batch or a manual download
    DELIVERED = "delivered"
    REJECTED = "rejected"
    ERROR = "error"  # gave up (``dead_lettered`` when its message was parked)
    RETURN_REQUESTED = "return_requested"  # a return waits for an operator's decision
    RETURNED = "returned"
    CONVERTED = "converted"


#: Where each status may go next.
MOVES: dict[Status, frozenset[Status]] = {
    Status.QUEUED: frozenset({Status.SENDING, Status.ERROR}),
    Status.SENDING: frozenset(
        {Status.SENDING, Status.RETRYING, Status.DELIVERED, Status.REJECTED, Status.ERROR}
    ),
    Status.RETRYING: frozenset({Status.SENDING, Status.ERROR}),
    Status.PENDING: frozenset({Status.DELIVERED, Status.ERROR}),
    Status.DELIVERED: frozenset({Status.RETURN_REQUESTED, Status.RETURNED, Status.CONVERTED}),
    Status.REJECTED: frozenset(),
    Status.ERROR: frozenset({Status.QUEUED}),  # an operator replays its parked message
    Status.RETURN_REQUESTED: frozenset({Status.RETURNED, Status.DELIVERED}),
    Status.RETURNED: frozenset(),
    Status.CONVERTED: frozenset({Status.RETURNED}),
}
#: Nothing more is sent: the buyer answered, or the delivery gave up.
FINAL = frozenset(
    {
        Status.DELIVERED,
        Status.REJECTED,
        Status.ERROR,
        Status.RETURN_REQUESTED,
        Status.RETURNED,
        Status.CONVERTED,
    }
)
STATUS_BY_OUTCOME = {"success": Status.DELIVERED, "failure": Status.REJECTED, "error": Status.ERROR}
#: Beyond a request's timeout, the lease covers recording its answer.
LEASE_MARGIN_SECONDS = 10.0
#: How a duplicate waits for the worker holding the delivery before looking again.
BUSY_RETRY_SCHEDULE = (5.0, 10.0, 15.0, 30.0)


def can_move(old: str, new: str) -> bool:
    return Status(new) in MOVES[Status(old)]


_deliveries = cast(Table, Delivery.__table__)
_events = cast(Table, Event.__table__)
_attempts = cast(Table, DeliveryAttempt.__table__)
# Literal values, so the statement compiles once (an expanding IN parameter is re-rendered
# at every execution).
_NOT_FINAL = _deliveries.c.status.not_in([literal_column(f"'{s}'") for s in sorted(FINAL)])


@dataclass(frozen=True, slots=True)
class Claim:
    """A delivery this worker now holds (``attempt`` is the attempt it may make), or one
    that is ``final`` already (nothing to send)."""

    event_id: str
    recipient_id: str
    attempt: int
    final: bool
    claimed_at: datetime


def lease_for(timeout: float) -> timedelta:
    """How long a claim holds a delivery whose attempt may take ``timeout`` seconds."""
    return timedelta(seconds=timeout + LEASE_MARGIN_SECONDS)


def claim(session: Session, event_id: str, *, lease: timedelta, holder: str) -> Claim:
    """Take the next attempt of a delivery: ``sending``, held by ``holder`` until the
    lease lapses. Raises ``Busy`` while another holder's lease runs."""
    row = session.execute(
        select(
            _deliveries.c.status,
            _deliveries.c.attempts,
            _deliveries.c.updated_at,
            _deliveries.c.claimed_by,
            _deliveries.c.recipient_id,
        )
        .where(_deliveries.c.event_id == event_id)
        .with_for_update()
    ).first()
    if row is None:
        raise PermanentError(f"no delivery {event_id}")
    now = utcnow()
    if row.status in FINAL:
        return Claim(event_id, row.recipient_id, row.attempts, True, now)
    attempt = row.attempts + 1
    if row.status == Status.SENDING:
        if row.claimed_by == holder:
            attempt = row.attempts  # this holder again, after its own failure: same attempt
        elif (as_utc(row.updated_at) or now) + lease > now:
            raise Busy("another worker is delivering this lead", BUSY_RETRY_SCHEDULE)
    session.execute(
        update(_deliveries)
        .where(_deliveries.c.event_id == event_id)
        .values(status=Status.SENDING, attempts=attempt, updated_at=now, claimed_by=holder)
    )
    return Claim(event_id, row.recipient_id, attempt, False, now)


def release(session: Session, event_id: str, holder: str) -> None:
    """Give a claim back (nothing was sent): the next copy need not wait for the lease."""
    session.execute(
        update(_deliveries)
        .where(
            _deliveries.c.event_id == event_id,
            _deliveries.c.status == Status.SENDING,
            _deliveries.c.claimed_by == holder,
        )
        .values(status=Status.RETRYING, updated_at=utcnow(), claimed_by=None)
    )


@dataclass(frozen=True, slots=True)
class Attempt:
    """One try to deliver: when, how long, the answer's status (HTTP or SMTP), what went
    wrong, and the start of the answer."""

    at: datetime
    ms: int
    status: int | None
    error: str | None
    excerpt: str | None = None


EXCERPT_CHARS = 2048


def record_attempt(session: Session, claimed: Claim, attempt: Attempt, *, retrying: bool) -> bool:
    """Store the attempt of a claim; a retried delivery waits as ``retrying``. False when
    that attempt was recorded already (a copy of the message got there first)."""
    exists = session.execute(
        select(_attempts.c.id).where(
            _attempts.c.event_id == claimed.event_id, _attempts.c.number == claimed.attempt
        )
    ).first()
    if exists is not None:
        return False
    session.execute(
        _attempts.insert().values(
            event_id=claimed.event_id,
            number=claimed.attempt,
            at=attempt.at,
            ms=attempt.ms,
            status=attempt.status,
            error=attempt.error,
            excerpt=(attempt.excerpt or "")[:EXCERPT_CHARS] or None,
        )
    )
    if retrying:
        session.execute(
            update(_deliveries)
            .where(
                _deliveries.c.event_id == claimed.event_id,
                _deliveries.c.status == Status.SENDING,
            )
            .values(status=Status.RETRYING, updated_at=utcnow(), claimed_by=None)
        )
    return True


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
    """Record the step's outcome on its delivery and its event; False when already final.

    The delivery moves to its final status only if it is not final yet (``UPDATE ...
    RETURNING``, so two workers cannot both complete it), then its event gets the
    outcome. ``started_at`` (the event's, when the caller has it) saves reading it back.
    """
    session.flush()
    now = utcnow()
    values: dict[str, Any] = {
        "status": STATUS_BY_OUTCOME[outcome],
        "updated_at": now,
        "dead_lettered": dead,
        "claimed_by": None,
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
