"""What HTTP delivery reads and writes: the job for one delivery, its attempts, its outcome."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import ColumnElement, Table, insert, select, update
from sqlalchemy.orm import Session

from shared.configstore import ConfigStore
from shared.db.engine import as_utc, utcnow
from shared.db.models import Delivery, DeliveryAttempt, Event, Lead
from shared.db.outages import RECORD_PATIENCE_SECONDS
from shared.deliveries import FINAL
from shared.errors import Busy, PermanentError
from shared.flowconfig import HttpTarget
from shared.leaddata import base_variables, recipient_results
from shared.messaging import DeliverHttp

EXCERPT_CHARS = 2048

_deliveries = cast(Table, Delivery.__table__)
_attempts = cast(Table, DeliveryAttempt.__table__)
_events = cast(Table, Event.__table__)
_leads = cast(Table, Lead.__table__)


@dataclass(frozen=True, slots=True)
class Job:
    lead_id: str
    event_id: str
    recipient_id: str
    attempt: int
    target: HttpTarget
    flow_fields: list[str]
    variables: dict[str, Any]
    started_at: datetime | None = None  # the step event's start (for its duration)
    claimed_at: datetime | None = None  # stamped on the claim: tells this claim from others


@dataclass(frozen=True, slots=True)
class Claim:
    """``send``: this worker owns the attempt; ``final``: already done; ``busy``: another
    worker holds a live claim (a duplicate message)."""

    state: str
    job: Job | None = None


#: How long a duplicate waits for the worker holding the delivery before looking again.
BUSY_RETRY_SCHEDULE = (5.0, 10.0, 15.0, 30.0)

#: Beyond the request's timeout, a claim also covers recording the answer through a short
#: database outage (``record_patiently``), so no second copy sends it meanwhile.
LEASE_MARGIN_SECONDS = 5.0 + RECORD_PATIENCE_SECONDS


def claim(session: Session, configs: ConfigStore, message: DeliverHttp) -> Claim:
    """Take the next attempt of a delivery, in the transaction that reads what it needs.

    A claim is a ``sending`` status stamped with ``updated_at``; it lapses after the
    request timeout plus a margin, so a worker killed mid-request never strands a lead
    (it is sent again once the lease lapses).
    Two statements: the delivery (locked), its lead and its event's start in one read,
    then the claim itself.
    """
    row = session.execute(
        select(
            _deliveries.c.status,
            _deliveries.c.attempts,
            _deliveries.c.updated_at,
            _deliveries.c.recipient_id,
            _events.c.started_at,
            _leads.c.flow_id,
            _leads.c.source_id,
            _leads.c.received_at,
            _leads.c.fields,
            _leads.c.config_version,
        )
        .select_from(
            _deliveries.join(_leads, _leads.c.id == _deliveries.c.lead_id).join(
                _events, _events.c.id == _deliveries.c.event_id
            )
        )
        .where(_deliveries.c.event_id == message.event_id, _leads.c.id == message.lead_id)
        .with_for_update(of=_deliveries)
    ).first()
    if row is None:
        raise PermanentError(f"no delivery {message.event_id} for lead {message.lead_id}")
    if row.status in FINAL:
        return Claim("final")
    config = configs.get(row.config_version, session)
    recipient = config.recipients.get(row.recipient_id)
    if recipient is None or recipient.http is None:
        raise PermanentError(f"recipient {row.recipient_id} has no http settings")
    now = utcnow()
    lease = timedelta(seconds=recipient.http.timeout + LEASE_MARGIN_SECONDS)
    if row.status == "sending" and (as_utc(row.updated_at) or now) + lease > now:
        return Claim("busy")
    attempt = row.attempts + 1
    session.execute(
        update(_deliveries)
        .where(_deliveries.c.event_id == message.event_id)
        .values(status="sending", attempts=attempt, updated_at=now)
    )
    flow = config.flows[row.flow_id]
    variables = base_variables(
        lead_id=message.lead_id,
        flow_id=row.flow_id,
        source_id=row.source_id,
        received_at=as_utc(row.received_at) or now,
        fields=row.fields,
    )
    variables.update(
        recipient_results(
            session.execute(
                select(
                    _events.c.recipient_id,
                    _events.c.outcome,
                    _events.c.reason,
                    _events.c.price,
                    _events.c.appended,
                )
                .where(
                    _events.c.lead_id == message.lead_id,
                    _events.c.type == "recipient",
                    _events.c.outcome.is_not(None),
                )
                .order_by(_events.c.step)
            ).all()
        )
    )
    variables["event"] = {"id": message.event_id}
    return Claim(
        "send",
        Job(
            lead_id=message.lead_id,
            event_id=message.event_id,
            recipient_id=row.recipient_id,
            attempt=attempt,
            target=recipient.http,
            flow_fields=list(flow.fields),
            variables=variables,
            started_at=row.started_at,
            claimed_at=now,
        ),
    )


def _still_held(job: Job) -> tuple[ColumnElement[bool], ...]:
    """The delivery row as ``job``'s claim left it."""
    return (
        _deliveries.c.event_id == job.event_id,
        _deliveries.c.status == "sending",
        _deliveries.c.attempts == job.attempt,
        _deliveries.c.updated_at == job.claimed_at,
    )


def renew(session: Session, claim: Claim) -> Claim:
    """Stamp a claim afresh (finding out that its commit happened took time out of its
    lease); raises ``Busy`` if it lapsed and another worker took the delivery meanwhile."""
    if claim.job is None:
        return claim
    now = utcnow()
    renewed = session.execute(
        update(_deliveries)
        .where(*_still_held(claim.job))
        .values(updated_at=now)
        .returning(_deliveries.c.event_id)
    ).first()
    if renewed is None:
        raise Busy("the claim lapsed while the database was away", BUSY_RETRY_SCHEDULE)
    return replace(claim, job=replace(claim.job, claimed_at=now))


def holds(session: Session, claim: Claim) -> bool:
    """Whether ``claim`` is stored (read after its commit went unanswered); a claim that
    wrote nothing (``final``, ``busy``) needs no commit."""
    if claim.job is None:
        return True
    found = session.execute(select(_deliveries.c.event_id).where(*_still_held(claim.job)))
    return found.first() is not None


@dataclass(frozen=True, slots=True)
class AttemptRecord:
    at: datetime
    ms: int
    status: int | None
    error: str | None
    excerpt: str | None


def record_attempt(session: Session, job: Job, attempt: AttemptRecord, *, retrying: bool) -> None:
    """Store the attempt this worker claimed; a retried delivery waits as ``retrying``."""
    session.execute(
        insert(_attempts).values(
            event_id=job.event_id,
            number=job.attempt,
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
            .where(_deliveries.c.event_id == job.event_id, _deliveries.c.status == "sending")
            .values(status="retrying", updated_at=utcnow())
        )
