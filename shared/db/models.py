"""The record: leads, events, deliveries and attempts, dead letters, the outbox, config versions.

Rows are written through Core statements and read through either: Core statements in place of
the router's ORM loads and flushes halved its CPU per message (bench/RESULTS.md).

Longer than 300 lines on purpose: it is the whole schema, one class per table, read as
one page beside ARCHITECTURE.md's table list (Alembic compares the migrations with it).
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    Numeric,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

ID = String(32)
NAME = String(200)


def serial() -> Mapped[int]:
    """A row number the database gives (BIGINT; SQLite's INTEGER so it is the rowid)."""
    return mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )


class Base(DeclarativeBase):
    type_annotation_map = {datetime: DateTime(timezone=True), dict[str, Any]: JSON}


class ConfigVersion(Base):
    __tablename__ = "config_versions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    created_at: Mapped[datetime]
    checksum: Mapped[str] = mapped_column(String(64))
    source_text: Mapped[str] = mapped_column(Text)
    document: Mapped[dict[str, Any]]


class Lead(Base):
    __tablename__ = "leads"
    __table_args__ = (Index("ix_leads_flow_received", "flow_id", "received_at"),)

    id: Mapped[str] = mapped_column(ID, primary_key=True)
    flow_id: Mapped[str] = mapped_column(NAME)
    source_id: Mapped[str] = mapped_column(NAME)
    config_version: Mapped[int] = mapped_column(Integer)
    received_at: Mapped[datetime] = mapped_column(index=True)
    completed_at: Mapped[datetime | None]
    # new: stored, no router has started it; routing: in the flow; done: the flow ended
    state: Mapped[str] = mapped_column(String(16), default="new")
    outcome: Mapped[str | None] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(Text)
    price: Mapped[Decimal] = mapped_column(Numeric(12, 2), default=Decimal(0))
    fields: Mapped[dict[str, Any]]
    step_index: Mapped[int] = mapped_column(Integer, default=0)
    waiting_event_id: Mapped[str | None] = mapped_column(ID)
    reply_to: Mapped[str | None] = mapped_column(String(255))
    version: Mapped[int] = mapped_column(Integer, default=1)
    duplicate_of: Mapped[str | None] = mapped_column(ID)  # refused at intake as its duplicate
    cost: Mapped[Decimal | None] = mapped_column(Numeric(12, 2))  # paid to its source
    accepted: Mapped[bool | None]  # False: failed at intake (None: stored before 0006)
    # Facts the reports count without a join: a recipient bought it; one returned it.
    sold: Mapped[bool | None] = mapped_column(default=False)
    returned: Mapped[bool | None] = mapped_column(default=False)
    ping_id: Mapped[str | None] = mapped_column(ID)  # posted against this ping's quote
    # What the console searches by (``shared.leaddata.contacts``)
    email: Mapped[str | None] = mapped_column(String(254), index=True)
    phone: Mapped[str | None] = mapped_column(String(254), index=True)

    __mapper_args__ = {"version_id_col": version}


class Event(Base):
    __tablename__ = "events"
    __table_args__ = (UniqueConstraint("lead_id", "type", "step", name="uq_events_lead_type_step"),)

    id: Mapped[str] = mapped_column(ID, primary_key=True)
    lead_id: Mapped[str] = mapped_column(ForeignKey("leads.id"), index=True)
    # source | filter | recipient | feedback-received | feedback-sent
    type: Mapped[str] = mapped_column(String(24))
    step: Mapped[int | None] = mapped_column(Integer)
    recipient_id: Mapped[str | None] = mapped_column(NAME)
    outcome: Mapped[str | None] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(Text)
    price: Mapped[Decimal] = mapped_column(Numeric(12, 2), default=Decimal(0))
    started_at: Mapped[datetime]
    completed_at: Mapped[datetime | None]
    ms: Mapped[int | None] = mapped_column(Integer)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    steps_processed: Mapped[int | None] = mapped_column(Integer)
    appended: Mapped[dict[str, Any] | None]
    parent_event_id: Mapped[str | None] = mapped_column(ID, index=True)

    # Declared so the unit of work inserts leads before their events; never loaded.
    lead: Mapped[Lead] = relationship(lazy="raise", viewonly=False)


class Delivery(Base):
    __tablename__ = "deliveries"
    __table_args__ = (Index("ix_deliveries_recipient_status", "recipient_id", "status"),)

    event_id: Mapped[str] = mapped_column(ForeignKey("events.id"), primary_key=True)
    lead_id: Mapped[str] = mapped_column(ForeignKey("leads.id"), index=True)
    recipient_id: Mapped[str] = mapped_column(NAME)
    kind: Mapped[str] = mapped_column(String(16))  # http | email | manual
    # queued | retrying | pending | delivered | rejected | error | returned | converted
    status: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    dead_lettered: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    delivered_at: Mapped[datetime | None]
    # Who holds the delivery while it is ``sending``: the worker and its message.
    claimed_by: Mapped[str | None] = mapped_column(String(80))
    # The email batch or manual download that took this lead (never two: set once).
    batch_id: Mapped[str | None] = mapped_column(ForeignKey("batches.id"), index=True)
    # The recipient's cap slots taken for it, until its result settles them
    # (``shared.gates.caps``: "key<TAB>period" lines).
    cap_holds: Mapped[str | None] = mapped_column(Text)

    # Declared so the unit of work inserts the step's event before its delivery.
    event: Mapped[Event] = relationship(lazy="raise")


class DeliveryAttempt(Base):
    __tablename__ = "delivery_attempts"
    __table_args__ = (UniqueConstraint("event_id", "number", name="uq_attempts_event_number"),)

    id: Mapped[int] = serial()
    event_id: Mapped[str] = mapped_column(ForeignKey("deliveries.event_id"), index=True)
    number: Mapped[int] = mapped_column(Integer)
    at: Mapped[datetime]
    ms: Mapped[int] = mapped_column(Integer)
    status: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)
    excerpt: Mapped[str | None] = mapped_column(Text)


class Batch(Base):
    """One file of a recipient's pending leads: an email batch or a manual download.

    ``(recipient_id, due_at)`` is the slot key: of several schedulers claiming one slot,
    one inserts the row and the others get an IntegrityError.
    """

    __tablename__ = "batches"
    __table_args__ = (
        UniqueConstraint("recipient_id", "due_at", name="uq_batches_recipient_due"),
        Index("ix_batches_state", "state"),
    )

    id: Mapped[str] = mapped_column(ID, primary_key=True)
    recipient_id: Mapped[str] = mapped_column(NAME)
    trigger: Mapped[str] = mapped_column(String(16))  # schedule | send | download
    due_at: Mapped[datetime]
    created_at: Mapped[datetime] = mapped_column(index=True)
    state: Mapped[str] = mapped_column(String(16))  # pending | sent | error
    leads: Mapped[int] = mapped_column(Integer, default=0)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    published_at: Mapped[datetime | None]
    sending_until: Mapped[datetime | None]
    sent_at: Mapped[datetime | None]
    reason: Mapped[str | None] = mapped_column(Text)


class Submission(Base):
    """A held key, until it expires: a resubmission key (a hash of a source's submission
    body, or of an ``Idempotency-Key`` header) and what the first request made (a lead,
    or a feedback event); or a duplicate key and the lead (flow) or the recipient step's
    event (recipient) holding it."""

    __tablename__ = "submissions"
    key: Mapped[bytes] = mapped_column(LargeBinary(32), primary_key=True)  # sha256
    record_id: Mapped[str] = mapped_column(ID)
    expires_at: Mapped[datetime] = mapped_column(index=True)


class OutboxMessage(Base):
    __tablename__ = "outbox"

    id: Mapped[int] = serial()
    queue: Mapped[str] = mapped_column(NAME)
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(index=True)


class DeadLetter(Base):
    __tablename__ = "dead_letters"

    id: Mapped[int] = serial()
    queue: Mapped[str] = mapped_column(NAME, index=True)
    message_id: Mapped[str] = mapped_column(String(64), unique=True)
    lead_id: Mapped[str | None] = mapped_column(ID, index=True)
    event_id: Mapped[str | None] = mapped_column(ID)
    recipient_id: Mapped[str | None] = mapped_column(NAME)
    attempts: Mapped[int] = mapped_column(Integer)
    last_reason: Mapped[str | None] = mapped_column(Text)
    failures: Mapped[dict[str, Any]]
    body: Mapped[str] = mapped_column(Text)
    parked_at: Mapped[datetime]
    state: Mapped[str] = mapped_column(String(16), default="parked")  # parked | replayed | purged
    resolved_at: Mapped[datetime | None]


class CapCounter(Base):
    """What a cap has used in one window (``shared.gates.caps``): taken by a conditional
    update, never read and written back."""

    __tablename__ = "cap_counters"

    cap_key: Mapped[str] = mapped_column(String(300), primary_key=True)
    period: Mapped[str] = mapped_column(String(32), primary_key=True)  # window start, UTC
    used: Mapped[int] = mapped_column(Integer, default=0)
    revenue: Mapped[Decimal] = mapped_column(Numeric(14, 2), default=Decimal(0))
    updated_at: Mapped[datetime] = mapped_column(index=True)


class RecipientState(Base):
    """An operator's switch on a recipient (``leadflow recipients pause|resume``)."""

    __tablename__ = "recipient_states"

    recipient_id: Mapped[str] = mapped_column(NAME, primary_key=True)
    paused: Mapped[bool] = mapped_column(Boolean, default=False)
    changed_at: Mapped[datetime]


class LedgerEntry(Base):
    """One charge or credit, never changed (``shared.money.ledger``): a correction is a
    new row. Charges (``cost``, ``revenue``) are positive, reversals (``return``,
    ``chargeback``) negative."""

    __tablename__ = "ledger"
    __table_args__ = (Index("ix_ledger_party_at", "party_type", "party", "at"),)

    id: Mapped[int] = serial()
    lead_id: Mapped[str] = mapped_column(ID, index=True)
    event_id: Mapped[str | None] = mapped_column(ID)
    party_type: Mapped[str] = mapped_column(String(16))  # source | recipient
    party: Mapped[str] = mapped_column(NAME)  # the recipient's id; "flow/source"
    # The lead's flow, source and time of receipt (reports group by them without a join).
    flow_id: Mapped[str] = mapped_column(NAME)
    source_id: Mapped[str] = mapped_column(NAME)
    received_at: Mapped[datetime] = mapped_column(index=True)
    kind: Mapped[str] = mapped_column(String(16))  # cost | revenue | return | chargeback
    amount: Mapped[Decimal] = mapped_column(Numeric(12, 2))
    at: Mapped[datetime]


class ReturnRequest(Base):
    """An accepted return (its id: the ``feedback-received`` event's) and its decision:
    ``requested`` until an operator approves or rejects it (``approval: manual``), or
    ``approved`` at once (``auto``)."""

    __tablename__ = "returns"
    __table_args__ = (Index("ix_returns_recipient_at", "recipient_id", "requested_at"),)

    id: Mapped[str] = mapped_column(ID, primary_key=True)
    lead_id: Mapped[str] = mapped_column(ID, index=True)
    event_id: Mapped[str] = mapped_column(ID, index=True)  # the recipient step's
    recipient_id: Mapped[str] = mapped_column(NAME)
    reason: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), index=True)  # requested|approved|rejected
    requested_at: Mapped[datetime]
    decided_at: Mapped[datetime | None]
    decision_reason: Mapped[str | None] = mapped_column(Text)


class Ping(Base):
    """A source's ping (SPEC section 12): the fields it carried, its answer, and the lead
    posted against it (``lead_id``: taken once, by a conditional update)."""

    __tablename__ = "pings"
    __table_args__ = (Index("ix_pings_dedupe", "dedupe_key", "created_at"),)

    id: Mapped[str] = mapped_column(ID, primary_key=True)
    flow_id: Mapped[str] = mapped_column(NAME)
    source_id: Mapped[str] = mapped_column(NAME)
    config_version: Mapped[int] = mapped_column(Integer)
    dedupe_key: Mapped[str] = mapped_column(String(64))
    fields: Mapped[dict[str, Any]]
    outcome: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(Text)
    price: Mapped[Decimal] = mapped_column(Numeric(12, 2))
    ms: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(index=True)
    expires_at: Mapped[datetime]
    lead_id: Mapped[str | None] = mapped_column(ID)


class PingBid(Base):
    """One buyer's bid in an auction: of a source's ping (``ping_id``), or of a lead's
    auction step run without one (``lead_id``, ``event_id``: the step's)."""

    __tablename__ = "ping_bids"

    id: Mapped[int] = serial()
    ping_id: Mapped[str | None] = mapped_column(ID, index=True)
    lead_id: Mapped[str | None] = mapped_column(ID, index=True)
    event_id: Mapped[str | None] = mapped_column(ID)
    flow_id: Mapped[str] = mapped_column(NAME)
    source_id: Mapped[str] = mapped_column(NAME)
    step: Mapped[int] = mapped_column(Integer)
    recipient_id: Mapped[str] = mapped_column(NAME, index=True)
    outcome: Mapped[str] = mapped_column(String(16))  # bid | no bid | timeout | error
    amount: Mapped[Decimal] = mapped_column(Numeric(12, 2))
    reference: Mapped[str | None] = mapped_column(Text)
    ms: Mapped[int] = mapped_column(Integer)
    reason: Mapped[str | None] = mapped_column(Text)
    pinged: Mapped[bool] = mapped_column(Boolean)
    at: Mapped[datetime] = mapped_column(index=True)


class User(Base):
    """A person who may use the console (``leadflow users add``): a viewer reads, an
    operator also acts. The password is kept as an argon2 hash only."""

    __tablename__ = "users"

    id: Mapped[str] = mapped_column(ID, primary_key=True)
    name: Mapped[str] = mapped_column(NAME, unique=True)
    role: Mapped[str] = mapped_column(String(16))  # viewer | operator
    password_hash: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime]
