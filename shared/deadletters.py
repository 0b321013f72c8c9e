"""Parked messages: their database mirror and what operators do with them.

AMQP cannot browse a queue, so each parked message has a mirror row, written when it is
parked (``mirror_dead_letter``). Operators list, show, replay and purge them through the
functions here: ``leadflow dead`` calls them, and the console is to call the same ones.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session

from shared.db.engine import SessionFactory, transaction, utcnow
from shared.db.models import DeadLetter, Delivery, DeliveryAttempt
from shared.db.queries import from_key, listed, where_given
from shared.messaging import ParkedMessage
from shared.messaging.admin import republish, take_parked

logger = logging.getLogger(__name__)


def mirror_dead_letter(session: Session, parked: ParkedMessage) -> None:
    """Insert or refresh the mirror row of a parked message, in the caller's transaction."""
    payload = parked.payload if isinstance(parked.payload, dict) else {}
    values = {
        "queue": parked.queue,
        "lead_id": payload.get("lead_id"),
        "event_id": payload.get("event_id"),
        "recipient_id": payload.get("recipient_id"),
        "attempts": parked.attempts,
        "last_reason": parked.last_reason,
        "failures": {"failures": parked.failures},
        "body": parked.body,
        "parked_at": utcnow(),
        "state": "parked",
        "resolved_at": None,
    }
    refreshed = session.execute(
        update(DeadLetter).where(DeadLetter.message_id == parked.message_id).values(values)
    )
    if refreshed.rowcount == 0:  # type: ignore[attr-defined]
        session.execute(insert(DeadLetter).values(message_id=parked.message_id, **values))


def parked_messages(
    factory: SessionFactory,
    *,
    queue: str | None = None,
    recipient: str | None = None,
    lead_id: str | None = None,
    after: int | None = None,
    limit: int | None = None,
) -> list[DeadLetter]:
    """Parked messages, the oldest first; a page of ``limit`` from just past the row
    ``after`` (its id) when given."""
    query = where_given(
        select(DeadLetter).where(DeadLetter.state == "parked"),
        (DeadLetter.queue, queue),
        (DeadLetter.recipient_id, recipient),
        (DeadLetter.lead_id, lead_id),
    )
    with factory() as session:
        query = from_key(
            query, session, DeadLetter.parked_at, DeadLetter.id, after, newest_first=False
        )
    return listed(factory, query if limit is None else query.limit(limit), utc=["parked_at"])


@dataclass(frozen=True, slots=True)
class ParkedDetail:
    letter: DeadLetter
    attempts: list[DeliveryAttempt]


def parked_detail(factory: SessionFactory, key: str) -> ParkedDetail | None:
    """A parked message by its message id, event id or lead id, with the delivery's attempts."""
    with factory() as session:
        letter = session.scalars(
            select(DeadLetter)
            .where(
                (DeadLetter.message_id == key)
                | (DeadLetter.event_id == key)
                | (DeadLetter.lead_id == key)
            )
            .order_by(DeadLetter.parked_at.desc())
        ).first()
        if letter is None:
            return None
        attempts = (
            list(
                session.scalars(
                    select(DeliveryAttempt)
                    .where(DeliveryAttempt.event_id == letter.event_id)
                    .order_by(DeliveryAttempt.number)
                )
            )
            if letter.event_id
            else []
        )
    return ParkedDetail(letter, attempts)


def replay(
    factory: SessionFactory, broker_url: str, letters: list[DeadLetter], queue_type: str = "classic"
) -> int:
    """Put parked messages back on their work queues; the delivery runs again.

    A delivery that failed for good is reopened (``queued``) so the worker sends it again;
    one that has succeeded since is left as it is, and its message changes nothing.
    """
    by_queue: dict[str, list[DeadLetter]] = {}
    for letter in letters:
        by_queue.setdefault(letter.queue, []).append(letter)
    for queue, group in by_queue.items():
        with transaction(factory) as session:
            for letter in group:
                replayed = session.execute(
                    update(DeadLetter)
                    .where(DeadLetter.id == letter.id, DeadLetter.state == "parked")
                    .values(state="replayed", resolved_at=utcnow())
                    .returning(DeadLetter.id)
                ).first()
                if replayed is not None and letter.event_id:
                    session.execute(
                        update(Delivery)
                        .where(
                            Delivery.event_id == letter.event_id,
                            Delivery.dead_lettered.is_(True),
                            Delivery.status == "error",
                        )
                        .values(status="queued", dead_lettered=False, updated_at=utcnow())
                    )
        take_parked(broker_url, queue, {letter.message_id for letter in group}, queue_type)
        republish(broker_url, queue, [letter.body for letter in group], queue_type)
        for letter in group:
            logger.info(
                "replayed %s on %s",
                letter.message_id,
                queue,
                extra={"lead_id": letter.lead_id, "event_id": letter.event_id},
            )
    return len(letters)


def purge(
    factory: SessionFactory, broker_url: str, letters: list[DeadLetter], queue_type: str = "classic"
) -> int:
    """Remove parked messages for good (the record keeps the delivery's outcome)."""
    by_queue: dict[str, set[str]] = {}
    for letter in letters:
        by_queue.setdefault(letter.queue, set()).add(letter.message_id)
    for queue, ids in by_queue.items():
        take_parked(broker_url, queue, ids, queue_type)
    with transaction(factory) as session:
        for letter in letters:
            session.execute(
                update(DeadLetter)
                .where(DeadLetter.id == letter.id, DeadLetter.state == "parked")
                .values(state="purged", resolved_at=utcnow())
            )
    return len(letters)
