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

Why one module of this size: it is the one place the statuses, their moves, the claim and
the recording of outcomes are written down, so that HTTP, email and manual delivery
cannot drift apart again (the reason it was made).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Any, cast

from sqlalchemy import Table, bindparam, select, update
from sqlalchemy.orm import Session

from shared.db.engine import as_utc, utcnow
from shared.db.models import Delivery, DeliveryAttempt, Event
from shared.db.queries import PerDialect, UpdateMany
from shared.db.upsert import upsert_returning
from shared.errors import Busy, PermanentError


class Status(StrEnum):
    QUEUED = "queued"  # handed to a delivery queue; no worker holds it
    SENDING = "sending"  # in flight: a worker holds it under a lease
    RETRYING = "retrying"  # an attempt failed; the next one waits in a retry tier
    PENDING = "pending"  # waits for an email batch or a manual download
    DELIVERED = "delivered"
    REJECTED = "rejected"
    ERROR = "error"  # gave up (``dead_lettered`` when its message was parked)
    RETURN_REQUESTED = "return requested"  # a return waits for an operator's decision
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
#: A buyer took the lead, whatever became of it since (what reports and return limits count).
SOLD = frozenset({Status.DELIVERED, Status.RETURN_REQUESTED, Status.RETURNED, Status.CONVERTED})
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


@dataclass(frozen=True, slots=True)
class Claim:
    """A delivery this worker now holds (``attempt`` is the attempt it may make), or one
    that is ``final`` already (nothing to send)."""

    event_id: str
    recipient_id: str
    attempt: int
    final: bool
    claimed_at: datetime
    lead_id: str = ""


@dataclass(frozen=True, slots=True)
class Asked:
    """A claim asked for: the delivery, who would hold it, and for how long."""

    event_id: str
    holder: str
    lease: timedelta


def lease_for(timeout: float) -> timedelta:
    """How long a claim holds a delivery whose attempt may take ``timeout`` seconds."""
    return timedelta(seconds=timeout + LEASE_MARGIN_SECONDS)


_LOCK_DELIVERIES = PerDialect(
    lambda one_of: (
        select(
            _deliveries.c.event_id,
            _deliveries.c.status,
            _deliveries.c.attempts,
            _deliveries.c.updated_at,
            _deliveries.c.claimed_by,
            _deliveries.c.recipient_id,
            _deliveries.c.lead_id,
        )
        .where(one_of(_deliveries.c.event_id, "event_ids"))
        .order_by(_deliveries.c.event_id)
        .with_for_update()
    )
)
_UPDATE_DELIVERIES = UpdateMany(_deliveries, "event_id")
_UPDATE_EVENTS = UpdateMany(_events, "id")


def claim_many(session: Session, asked: Sequence[Asked]) -> list[Claim | BaseException]:
    """Take the next attempt of each delivery asked for: ``sending``, held by its holder
    until the lease lapses. Each gets its ``Claim``, ``Busy`` while another holder's lease
    runs, or ``PermanentError`` for a delivery that does not exist. Two statements for
    the whole batch: the rows locked (in key order), then the claims written."""
    rows = {
        row.event_id: row
        for row in _LOCK_DELIVERIES.execute(
            session.connection(), {"event_ids": sorted({a.event_id for a in asked})}
        )
    }
    now = utcnow()
    results: list[Claim | BaseException] = []
    taken: dict[str, dict[str, Any]] = {}
    for one in asked:
        row = rows.get(one.event_id)
        if row is None:
            results.append(PermanentError(f"no delivery {one.event_id}"))
            continue
        held = taken.get(one.event_id)
        status, holder = (
            (Status.SENDING, held["claimed_by"]) if held else (row.status, row.claimed_by)
        )
        attempts = held["attempts"] if held else row.attempts
        updated_at = now if held else (as_utc(row.updated_at) or now)
        if status in FINAL:
            results.append(Claim(one.event_id, row.recipient_id, attempts, True, now, row.lead_id))
            continue
        attempt = attempts + 1
        if status == Status.SENDING:
            if holder == one.holder:
                attempt = attempts  # this holder again, after its own failure: same attempt
            elif updated_at + one.lease > now:
                results.append(Busy("another worker is delivering this lead", BUSY_RETRY_SCHEDULE))
                continue
        taken[one.event_id] = {
            "key": one.event_id,
            "status": Status.SENDING,
            "attempts": attempt,
            "updated_at": now,
            "claimed_by": one.holder,
        }
        results.append(Claim(one.event_id, row.recipient_id, attempt, False, now, row.lead_id))
    _UPDATE_DELIVERIES.execute(session.connection(), list(taken.values()))
    return results


def claim(session: Session, event_id: str, *, lease: timedelta, holder: str) -> Claim:
    """``claim_many`` for one delivery (raises its ``Busy`` or ``PermanentError``)."""
    (result,) = claim_many(session, [Asked(event_id, holder, lease)])
    if isinstance(result, BaseException):
        raise result
    return result


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


@dataclass(frozen=True, slots=True)
class Completion:
    """The step's outcome, read from the recipient's answer."""

    outcome: str
    reason: str | None
    price: Decimal = Decimal(0)
    appended: dict[str, Any] | None = None
    started_at: datetime | None = None  # the step event's (saves reading it back)
    dead: bool = False  # gave up, its message parked


@dataclass(frozen=True, slots=True)
class Answered:
    """What became of a claimed attempt: the attempt, and the step's outcome (None: the
    attempt failed for now; the delivery waits in a retry tier as ``retrying``)."""

    claimed: Claim
    attempt: Attempt
    completion: Completion | None


_LOCK_FOR_COMPLETION = PerDialect(
    lambda one_of: (
        select(
            _deliveries.c.event_id,
            _deliveries.c.status,
            _deliveries.c.attempts,
            _events.c.started_at,
        )
        .select_from(_deliveries.join(_events, _events.c.id == _deliveries.c.event_id))
        .where(one_of(_deliveries.c.event_id, "event_ids"))
        .order_by(_deliveries.c.event_id)
        .with_for_update(of=_deliveries)
    )
)
_TO_RETRYING = (
    update(_deliveries)
    .where(_deliveries.c.event_id == bindparam("key"), _deliveries.c.status == Status.SENDING)
    .values(status=Status.RETRYING, updated_at=bindparam("now"), claimed_by=None)
)


def record_many(session: Session, answered: Sequence[Answered]) -> list[bool]:
    """Store each answered attempt and, where there is one, the step's outcome (on the
    delivery and its event, once: a delivery already final keeps its outcome). False
    where that attempt was recorded already (a copy of the message got there first).
    A handful of statements for the whole batch."""
    connection = session.connection()
    rows = [
        {
            "event_id": a.claimed.event_id,
            "number": a.claimed.attempt,
            "at": a.attempt.at,
            "ms": a.attempt.ms,
            "status": a.attempt.status,
            "error": a.attempt.error,
            "excerpt": (a.attempt.excerpt or "")[:EXCERPT_CHARS] or None,
        }
        for a in answered
    ]
    stored = set(
        upsert_returning(
            connection,
            _attempts,
            rows,
            key=["event_id", "number"],
            replace_when=None,
            returning=(_attempts.c.event_id, _attempts.c.number),
        )
    )
    new = [(a.claimed.event_id, a.claimed.attempt) in stored for a in answered]
    now = utcnow()
    retrying = [
        {"key": a.claimed.event_id, "now": now}
        for a, fresh in zip(answered, new, strict=True)
        if fresh and a.completion is None
    ]
    if retrying:
        connection.execute(_TO_RETRYING, retrying)
    finals = {
        a.claimed.event_id: a.completion
        for a, fresh in zip(answered, new, strict=True)
        if fresh and a.completion is not None
    }
    if finals:
        _complete_many(connection, finals, now)
    return new


def _complete_many(connection: Any, finals: dict[str, Completion], now: datetime) -> int:
    """Each delivery not final yet gets its outcome, on it and on its event; how many."""
    deliveries, events = [], []
    locked = _LOCK_FOR_COMPLETION.execute(connection, {"event_ids": sorted(finals)})
    for row in locked:
        if row.status in FINAL:
            continue
        completion = finals[row.event_id]
        started = as_utc(completion.started_at or row.started_at) or now
        deliveries.append(
            {
                "key": row.event_id,
                "status": STATUS_BY_OUTCOME[completion.outcome],
                "updated_at": now,
                "delivered_at": now if completion.outcome == "success" else None,
                "dead_lettered": completion.dead,
                "claimed_by": None,
            }
        )
        events.append(
            {
                "key": row.event_id,
                "outcome": completion.outcome,
                "reason": completion.reason,
                "price": completion.price,
                "appended": completion.appended or None,
                "completed_at": now,
                "attempts": row.attempts,
                "ms": max(0, int((now - started).total_seconds() * 1000)),
            }
        )
    _UPDATE_DELIVERIES.execute(connection, deliveries)
    _UPDATE_EVENTS.execute(connection, events)
    return len(deliveries)


def complete(session: Session, event_id: str, completion: Completion) -> bool:
    """Record the step's outcome without an answered attempt (a delivery that gave up, an
    email the server took); False when the delivery was final already."""
    return _complete_many(session.connection(), {event_id: completion}, utcnow()) == 1
