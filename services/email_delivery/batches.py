"""Email batches: a recipient's pending leads claimed once, sent once, their end recorded.

A batch is claimed in one transaction: its row is inserted under the slot key
``(recipient_id, due_at)`` (a second scheduler claiming the same slot gets an
IntegrityError and moves on), then the recipient's pending deliveries that no batch has
taken are assigned to it (``shared.pending``: a lead is never in two batches). A slot
with nothing pending stores nothing and sends nothing.

A scheduled batch (due at T) takes only the deliveries created at or before T: a
scheduler that starts at 10:00 and catches up the 08:00 slot sends the leads that were
waiting at 08:00, not one that came at 08:30 (that one waits for the next slot).
``leadflow batches send`` (and a manual download) takes every pending delivery.

Sending takes a lease on the batch (``sending_until``), so two copies of its message
never send it twice at once; the leads become ``delivered`` only after the server
accepted the message. The batch is published after the commit; a batch whose message
was never published (the process died, the broker was down) is published again by the
scheduler's sweep.

Just over 300 lines: a batch's whole life (claimed, published, sent, given up and its
leads unsold, listed) in the order it happens, all on the one ``batches`` row.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from services.email_delivery.compose import Envelope
from shared import leadfiles
from shared.configstore import ConfigStore
from shared.db.engine import SessionFactory, as_utc, transaction, utcnow
from shared.db.models import Batch, Delivery, Event, Lead
from shared.db.queries import listed, where_given
from shared.errors import Busy, PermanentError
from shared.flowconfig import EmailTarget
from shared.gates import caps, duplicates
from shared.ids import new_id
from shared.messaging import DeliverEmail, Publisher
from shared.money.pricing import owed
from shared.pending import assign_pending, has_pending, leads_of, mark_sold

logger = logging.getLogger(__name__)

LEASE = timedelta(minutes=5)
#: How a second copy of a batch's message waits for the worker holding the lease.
BUSY_RETRY_SCHEDULE = (60.0,)
STATES = ("pending", "sent", "error")


class _NothingPending(Exception):
    """Rolls back a claim that found no pending lead."""


@dataclass(frozen=True, slots=True)
class Claimed:
    batch_id: str
    recipient_id: str
    leads: int


def claim(
    sessions: SessionFactory, recipient_id: str, due_at: datetime, *, trigger: str = "schedule"
) -> Claimed | None:
    """Claim the slot and its pending leads; None when the slot is taken or nothing waits.

    A ``schedule`` claim takes the deliveries created at or before ``due_at``; a ``send``
    (the operator's "send now") takes every pending one."""
    created_by = due_at if trigger == "schedule" else None
    if not has_pending(sessions, recipient_id, created_by):
        return None  # (a plain read: an idle recipient never takes the write lock)
    batch_id = new_id()
    try:
        with transaction(sessions) as session:
            session.execute(
                insert(Batch).values(
                    id=batch_id,
                    recipient_id=recipient_id,
                    trigger=trigger,
                    due_at=due_at,
                    created_at=utcnow(),
                    state="pending",
                    leads=0,
                    attempts=0,
                )
            )
            count = assign_pending(session, recipient_id, batch_id, created_by=created_by)
            if count == 0:
                raise _NothingPending
            session.execute(update(Batch).where(Batch.id == batch_id).values(leads=count))
    except _NothingPending:
        return None
    except IntegrityError:
        logger.debug("slot %s of %s was claimed by another scheduler", due_at, recipient_id)
        return None
    logger.info("batch %s of %s claimed: %d leads", batch_id, recipient_id, count)
    return Claimed(batch_id, recipient_id, count)


def publish(sessions: SessionFactory, publisher: Publisher, claimed: Claimed) -> None:
    """Hand the batch to the workers (after its claim committed) and note that it was."""
    publisher.publish(DeliverEmail(recipient_id=claimed.recipient_id, batch_id=claimed.batch_id))
    with transaction(sessions) as session:
        session.execute(
            update(Batch).where(Batch.id == claimed.batch_id).values(published_at=utcnow())
        )


def unpublished(sessions: SessionFactory, older_than: timedelta) -> list[Claimed]:
    """Pending batches whose message was never published (the claimer died or the broker
    was down), for the scheduler to publish again."""
    cutoff = utcnow() - older_than
    with sessions() as session:
        found = session.execute(
            select(Batch.id, Batch.recipient_id, Batch.leads)
            .where(
                Batch.state == "pending",
                Batch.published_at.is_(None),
                Batch.created_at <= cutoff,
            )
            .order_by(Batch.created_at)
            .limit(100)
        )
        return [Claimed(r.id, r.recipient_id, r.leads) for r in found]


# --- the worker's side ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BatchJob:
    recipient_id: str
    target: EmailTarget
    columns: list[str]
    envelope: Envelope
    price: Decimal | None  # the recipient's, owed for each lead when the batch is sent


def _leased(batch: Batch, now: datetime) -> bool:
    """Whether a worker holds the batch's sending lease."""
    lease_end = as_utc(batch.sending_until)
    return lease_end is not None and lease_end > now


def begin_send(sessions: SessionFactory, configs: ConfigStore, batch_id: str) -> BatchJob | None:
    """Take the sending lease; None when the batch is already sent or given up."""
    now = utcnow()
    with transaction(sessions) as session:
        batch = session.get(Batch, batch_id, with_for_update=True)
        if batch is None:
            raise PermanentError(f"no batch {batch_id}")
        if batch.state != "pending":
            logger.info("batch %s is already %s; not sent again", batch_id, batch.state)
            return None
        if _leased(batch, now):
            raise Busy(f"batch {batch_id} is being sent by another worker", BUSY_RETRY_SCHEDULE)
        _, config = configs.latest()
        recipient = config.recipients.get(batch.recipient_id)
        if recipient is None or recipient.email is None:
            raise PermanentError(f"recipient {batch.recipient_id} has no email settings")
        present = session.execute(
            select(Lead.flow_id, Lead.config_version)
            .join(Delivery, Delivery.lead_id == Lead.id)
            .where(Delivery.batch_id == batch_id)
            .distinct()
        ).all()
        session.execute(
            update(Batch)
            .where(Batch.id == batch_id)
            .values(sending_until=now + LEASE, attempts=batch.attempts + 1)
        )
        flow_ids = {flow_id for flow_id, _ in present}
        return BatchJob(
            recipient_id=batch.recipient_id,
            target=recipient.email,
            price=recipient.price,
            columns=leadfiles.columns(
                config, leadfiles.recipient_flows(config, batch.recipient_id), configs, present
            ),
            envelope=Envelope(
                recipient_id=batch.recipient_id,
                recipient_name=recipient.name,
                flows=leadfiles.flow_names(config, flow_ids),
                at=as_utc(batch.due_at) or now,
                count=batch.leads,
                batch_id=batch_id,
            ),
        )


def rows(session: Session, batch_id: str) -> Iterator[dict[str, Any]]:
    return leadfiles.rows(session, leads_of(batch_id))


def mark_sent(
    sessions: SessionFactory, batch_id: str, price: Decimal | None, note: str | None = None
) -> int:
    """The server accepted the message: the batch is sent and its leads delivered. ``note``
    (the recipients the server refused while it accepted others) is kept as its reason."""
    now = utcnow()
    with transaction(sessions) as session:
        batch = session.get(Batch, batch_id, with_for_update=True)
        if batch is None or batch.state != "pending":
            return 0
        session.execute(
            update(Batch)
            .where(Batch.id == batch_id)
            .values(state="sent", sent_at=now, sending_until=None, reason=note)
        )
        result = session.execute(
            update(Delivery)
            .where(Delivery.batch_id == batch_id, Delivery.status == "pending")
            .values(
                status="delivered",
                delivered_at=now,
                updated_at=now,
                attempts=Delivery.attempts + 1,
            )
            .execution_options(synchronize_session=False)
        )
        mark_sold(session, batch_id, price, now)
        return int(result.rowcount)  # type: ignore[attr-defined]


def release(sessions: SessionFactory, batch_id: str, reason: str) -> None:
    """A failed attempt: give the lease back (the retry takes it again) and keep the reason."""
    with transaction(sessions) as session:
        session.execute(
            update(Batch)
            .where(Batch.id == batch_id, Batch.state == "pending")
            .values(sending_until=None, reason=reason)
        )


def give_up(sessions: SessionFactory, configs: ConfigStore, batch_id: str, reason: str) -> bool:
    """The retries are used up (or the failure is permanent): the batch and its leads are
    ``error``, the recipient lets their duplicate keys go, and gives back the cap slots
    (and revenue) they kept. False when the batch is
    done, or another worker holds its lease."""
    now = utcnow()
    with transaction(sessions) as session:
        batch = session.get(Batch, batch_id, with_for_update=True)
        if batch is None or batch.state != "pending" or _leased(batch, now):
            # done, or a live worker is sending it (a failing one gives its lease back)
            return False
        session.execute(
            update(Batch)
            .where(Batch.id == batch_id)
            .values(state="error", sending_until=None, reason=reason)
        )
        session.execute(
            update(Delivery)
            .where(Delivery.batch_id == batch_id, Delivery.status == "pending")
            .values(status="error", dead_lettered=True, updated_at=now)
            .execution_options(synchronize_session=False)
        )
        given_up = session.execute(
            leads_of(batch_id)
            .with_only_columns(
                Delivery.event_id, Delivery.lead_id, Lead.config_version, Lead.fields, Event.price
            )
            .join(Event, Event.id == Delivery.event_id)
        ).all()
        unsold: dict[str, Decimal] = {}
        refused = []
        for row in given_up:
            config = configs.get(row.config_version, session)
            recipient = config.recipients.get(batch.recipient_id)
            price = recipient.price if recipient is not None else None
            unsold[row.event_id] = owed(row.price, price)
            refused.append((config, batch.recipient_id, row.event_id, row.fields))
        connection = session.connection()
        # cap counters before duplicate keys: every transaction locks them in that order
        caps.release(connection, caps.holds_of(connection, list(unsold)), unsold, now)
        _unsell(session, given_up, reason, now)
        duplicates.let_go(connection, refused)
        return True


def _unsell(session: Session, given_up: Sequence[Any], reason: str, now: datetime) -> None:
    """The steps of a batch given up did not sell after all: each step's event is an
    ``error`` at no price, and its lead's price (and a finished lead's source event's)
    loses what the step had added."""
    lost: defaultdict[str, Decimal] = defaultdict(Decimal)
    for row in given_up:
        lost[row.lead_id] += Decimal(row.price or 0)
    session.execute(
        update(Event)
        .where(Event.id.in_([row.event_id for row in given_up]))
        .values(outcome="error", reason=reason, price=Decimal(0), completed_at=now)
        .execution_options(synchronize_session=False)
    )
    for lead_id, amount in lost.items():
        if amount <= 0:
            continue
        session.execute(
            update(Lead)
            .where(Lead.id == lead_id)
            .values(price=Lead.price - amount)
            .execution_options(synchronize_session=False)
        )
        session.execute(
            update(Event)
            .where(
                Event.lead_id == lead_id,
                Event.type == "source",
                Event.completed_at.is_not(None),
            )
            .values(price=Event.price - amount)
            .execution_options(synchronize_session=False)
        )


def listing(
    sessions: SessionFactory,
    *,
    recipient_id: str | None = None,
    state: str | None = None,
    limit: int = 50,
) -> list[Batch]:
    """The newest batches first, for ``leadflow batches list``."""
    query = where_given(
        select(Batch).order_by(Batch.created_at.desc(), Batch.id).limit(limit),
        (Batch.recipient_id, recipient_id),
        (Batch.state, state),
    )
    return listed(sessions, query, utc=["due_at", "created_at", "sent_at"])
