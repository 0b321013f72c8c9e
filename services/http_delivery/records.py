"""What HTTP delivery reads and writes: the job for one delivery (claimed through the one
claim of ``shared.deliveries``), its attempts, its outcome."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, select
from sqlalchemy.orm import Session

from shared import deliveries
from shared.configstore import ConfigStore
from shared.db.engine import as_utc, utcnow
from shared.db.models import Event, Lead
from shared.errors import PermanentError
from shared.flowconfig import HttpTarget
from shared.leaddata import base_variables, recipient_results
from shared.messaging import DeliverHttp

_events = cast(Table, Event.__table__)
_leads = cast(Table, Lead.__table__)


@dataclass(frozen=True, slots=True)
class Job:
    lead_id: str
    event_id: str
    recipient_id: str
    target: HttpTarget
    flow_fields: list[str]
    variables: dict[str, Any]
    claimed: deliveries.Claim
    started_at: datetime | None = None  # the step event's start (for its duration)

    @property
    def attempt(self) -> int:
        return self.claimed.attempt


def claim(
    session: Session, configs: ConfigStore, message: DeliverHttp, *, holder: str, margin: float
) -> Job | None:
    """The job of one delivery, claimed for ``holder``; None when it is final already.
    Raises ``Busy`` while another worker holds it."""
    target = _target(session, configs, message)
    claimed = deliveries.claim(
        session,
        message.event_id,
        lease=deliveries.lease_for(target.timeout + margin),
        holder=holder,
    )
    if claimed.final:
        return None
    row = session.execute(
        select(
            _leads.c.flow_id,
            _leads.c.source_id,
            _leads.c.received_at,
            _leads.c.fields,
            _leads.c.config_version,
            _events.c.started_at,
        )
        .select_from(_events.join(_leads, _leads.c.id == _events.c.lead_id))
        .where(_events.c.id == message.event_id)
    ).one()
    flow = configs.get(row.config_version, session).flows[row.flow_id]
    variables = base_variables(
        lead_id=message.lead_id,
        flow_id=row.flow_id,
        source_id=row.source_id,
        received_at=as_utc(row.received_at) or utcnow(),
        fields=row.fields,
    )
    variables.update(_earlier_results(session, message.lead_id))
    variables["event"] = {"id": message.event_id}
    return Job(
        lead_id=message.lead_id,
        event_id=message.event_id,
        recipient_id=claimed.recipient_id,
        target=target,
        flow_fields=list(flow.fields),
        variables=variables,
        claimed=claimed,
        started_at=row.started_at,
    )


def _target(session: Session, configs: ConfigStore, message: DeliverHttp) -> HttpTarget:
    version = session.execute(
        select(_leads.c.config_version).where(_leads.c.id == message.lead_id)
    ).scalar()
    if version is None:
        raise PermanentError(f"no lead {message.lead_id}")
    recipient = configs.get(version, session).recipients.get(message.recipient_id)
    if recipient is None or recipient.http is None:
        raise PermanentError(f"recipient {message.recipient_id} has no http settings")
    return recipient.http


def _earlier_results(session: Session, lead_id: str) -> dict[str, dict[str, Any]]:
    """What the lead's earlier recipient steps answered (templates may use it)."""
    return recipient_results(
        session.execute(
            select(
                _events.c.recipient_id,
                _events.c.outcome,
                _events.c.reason,
                _events.c.price,
                _events.c.appended,
            )
            .where(
                _events.c.lead_id == lead_id,
                _events.c.type == "recipient",
                _events.c.outcome.is_not(None),
            )
            .order_by(_events.c.step)
        ).all()
    )
