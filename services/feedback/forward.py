"""Forwarding accepted feedback to the lead's source (SPEC section 8).

The source's ``feedback`` settings (in the lead's configuration version) give the URL, the
format (json, form or xml) and which types it wants. The body carries ``type``,
``reason``, ``lead_id``, ``event_id`` (the lead's source event) and the lead's fields under
``lead``; the ``Idempotency-Key`` header is the ``feedback-received`` event's id.

One ``feedback-sent`` event per forwarded feedback records the source's answer; once it
holds an answer (success or failure), a redelivered message sends nothing and writes
nothing. A ``feedback-sent`` in ``error`` (the retries were used up) is overwritten if an
operator replays the message and it then gets through.

Two copies of one message (an outbox row published by two sweepers, a redelivery) may
reach two forwarders at once: the first to lock the ``feedback-received`` event claims
the forward (``claim_job``: a ``feedback-sent`` event without an outcome, started now);
the other waits (``Busy``) while the claim is younger than ``CLAIM``, so the source is
sent it once. A forward that failed gives its claim back (``release``); one whose worker
died holds it no longer than ``CLAIM``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session

from shared.configstore import ConfigStore
from shared.db.engine import as_utc, utcnow
from shared.db.models import Event, Lead
from shared.db.rows import event_row
from shared.errors import Busy, PermanentError
from shared.flowconfig import SourceFeedback
from shared.formats import xmlwrite
from shared.formats.dotpaths import flatten, nest
from shared.ids import new_id
from shared.leaddata import display_fields
from shared.messaging import FeedbackAccepted
from shared.outbound.request import OutgoingRequest, as_text
from shared.outbound.send import Answer

TIMEOUT = 10.0
#: How long a claimed forward is left to its worker: its request's timeout, and a margin.
CLAIM = timedelta(seconds=2 * TIMEOUT)
#: How a second copy of a message waits for the forwarder holding the claim.
BUSY_RETRY_SCHEDULE = (1.0, 5.0)
CONTENT_TYPES = {
    "json": "application/json",
    "form": "application/x-www-form-urlencoded",
    "xml": "application/xml",
}


@dataclass(frozen=True, slots=True)
class ForwardJob:
    lead_id: str
    feedback_event_id: str
    recipient_id: str | None
    source_id: str
    kind: str
    target: SourceFeedback
    request: OutgoingRequest


@dataclass(frozen=True, slots=True)
class Skipped:
    """Nothing to send: the reason is logged."""

    reason: str


# The body ----------------------------------------------------------------------------


def feedback_body(
    *, kind: str, reason: str | None, lead_id: str, source_event_id: str, fields: Mapping[str, Any]
) -> dict[str, Any]:
    """``type``, ``reason`` (empty when the buyer gave none), ``lead_id``, ``event_id``
    (the lead's source event) and the lead's fields under ``lead``."""
    return {
        "type": kind,
        "reason": reason or "",
        "lead_id": lead_id,
        "event_id": source_event_id,
        "lead": nested(fields),
    }


def nested(values: Mapping[str, Any]) -> dict[str, Any]:
    """Dotted field ids as nested objects (``a.b`` -> ``{"a": {"b": ...}}``); a dotted id
    that would clash with another field keeps its dotted name (plain ids go first)."""
    plain_first = sorted(values.items(), key=lambda item: "." in item[0])
    return nest(plain_first, repeated="dotted")


def encode(body: Mapping[str, Any], format: str) -> bytes:
    if format == "json":
        return json.dumps(body, default=as_text).encode()
    if format == "xml":
        return xmlwrite.from_mapping("feedback", body, as_text)
    # Objects as dot keys (``lead.first_name``), lists as repeated keys.
    return urlencode([(key, as_text(value)) for key, value in flatten(body)]).encode()


def build_forward_request(
    target: SourceFeedback, body: Mapping[str, Any], feedback_event_id: str
) -> OutgoingRequest:
    headers = dict(target.headers)
    headers["Idempotency-Key"] = feedback_event_id
    headers.setdefault("Content-Type", CONTENT_TYPES[target.format])
    headers.setdefault("Accept", "application/json, text/xml;q=0.9, */*;q=0.5")
    return OutgoingRequest(
        method="POST",
        url=target.url,
        headers=headers,
        body=encode(body, target.format),
        auth=None,
    )


# Reading and recording ---------------------------------------------------------------


def _sent_event(session: Session, feedback_event_id: str) -> Event | None:
    return session.scalars(
        select(Event).where(
            Event.parent_event_id == feedback_event_id, Event.type == "feedback-sent"
        )
    ).first()


def claim_job(
    session: Session, configs: ConfigStore, message: FeedbackAccepted
) -> ForwardJob | Skipped:
    """What to send, claimed for this worker (``Busy`` while another one holds it)."""
    job, sent = _load(session, configs, message, lock=True)
    if isinstance(job, Skipped):
        return job
    now = utcnow()
    if sent is None:
        _write_sent(session, job, None, {"started_at": now, "appended": _sending(job)})
    else:
        claimed = as_utc(sent.started_at)
        if sent.outcome is None and claimed is not None and now - claimed < CLAIM:
            raise Busy(f"feedback {job.feedback_event_id} is being forwarded", BUSY_RETRY_SCHEDULE)
        session.execute(update(Event).where(Event.id == sent.id).values(started_at=now))
    return job


def release(session: Session, job: ForwardJob) -> None:
    """A forward that failed for now gives its claim back (the retry claims it again)."""
    session.execute(
        update(Event)
        .where(
            Event.parent_event_id == job.feedback_event_id,
            Event.type == "feedback-sent",
            Event.outcome.is_(None),
        )
        .values(started_at=utcnow() - CLAIM)
    )


def load_job(
    session: Session, configs: ConfigStore, message: FeedbackAccepted
) -> ForwardJob | Skipped:
    """What to send (read only)."""
    return _load(session, configs, message, lock=False)[0]


def _load(
    session: Session, configs: ConfigStore, message: FeedbackAccepted, lock: bool
) -> tuple[ForwardJob | Skipped, Event | None]:
    """What to send, and the ``feedback-sent`` event so far; with ``lock``, the
    ``feedback-received`` event is locked first, so copies of one message are decided one
    after the other."""
    received = session.get(Event, message.feedback_event_id, with_for_update=lock)
    lead = session.get(Lead, message.lead_id)
    if received is None or lead is None or received.type != "feedback-received":
        raise PermanentError(f"no feedback {message.feedback_event_id} for lead {message.lead_id}")
    sent = _sent_event(session, received.id)
    if sent is not None and sent.outcome not in (None, "error"):
        return Skipped("already forwarded"), sent
    flow = configs.get(lead.config_version, session).flows.get(lead.flow_id)
    source = flow.sources.get(lead.source_id) if flow is not None else None
    target = source.feedback if source is not None else None
    kind = str((received.appended or {}).get("type"))
    if target is None:
        return Skipped(f"source {lead.source_id} has no feedback URL"), sent
    if not (target.returns if kind == "return" else target.conversions):
        return Skipped(f"source {lead.source_id} does not take {kind}s"), sent
    source_event_id = session.scalars(
        select(Event.id).where(Event.lead_id == lead.id, Event.type == "source")
    ).first()
    body = feedback_body(
        kind=kind,
        reason=received.reason,
        lead_id=lead.id,
        source_event_id=source_event_id or "",
        fields=display_fields(lead.fields),
    )
    job = ForwardJob(
        lead_id=lead.id,
        feedback_event_id=received.id,
        recipient_id=received.recipient_id,
        source_id=lead.source_id,
        kind=kind,
        target=target,
        request=build_forward_request(target, body, received.id),
    )
    return job, sent


def outcome_of(answer: Answer) -> tuple[str, str | None]:
    """A source's final answer: 2xx and 3xx accept the feedback, anything else refuses it."""
    if answer.status is not None and answer.status < 400:
        return "success", None
    if answer.status is None:
        return "failure", answer.error or "No answer"
    return "failure", f"HTTP {answer.status}"


def record_sent(
    session: Session,
    job: ForwardJob,
    *,
    at: datetime,
    outcome: str,
    reason: str | None,
    status: int | None,
    ms: int,
) -> None:
    """Write the ``feedback-sent`` event, unless an answer was recorded already."""
    session.get(Event, job.feedback_event_id, with_for_update=True)
    sent = _sent_event(session, job.feedback_event_id)
    if sent is not None and sent.outcome not in (None, "error"):
        return
    answer: dict[str, Any] = {
        "outcome": outcome,
        "reason": reason,
        "started_at": at,
        "completed_at": utcnow(),
        "ms": ms,
        "appended": {**_sending(job), "status": status},
    }
    _write_sent(session, job, sent, answer)


def _sending(job: ForwardJob) -> dict[str, Any]:
    return {"type": job.kind, "source": job.source_id, "url": job.target.url}


def _write_sent(
    session: Session, job: ForwardJob, sent: Event | None, values: dict[str, Any]
) -> None:
    """The ``feedback-sent`` event: inserted with ``values``, or ``sent`` updated."""
    if sent is not None:
        session.execute(update(Event).where(Event.id == sent.id).values(values))
        return
    row = event_row(
        id=new_id(),
        lead_id=job.lead_id,
        type="feedback-sent",
        started_at=values["started_at"],
        recipient_id=job.recipient_id,
    )
    row.update(values, parent_event_id=job.feedback_event_id)
    session.execute(insert(Event).values(row))
