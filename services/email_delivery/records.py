"""What real-time email delivery reads and writes: the job for one lead (claimed through
the one claim of ``shared.deliveries``, so a second copy of the message waits instead of
mailing the lead again), its attempts, its outcome."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy.orm import Session

from services.email_delivery.compose import Envelope
from services.email_delivery.mailer import DEFAULT_TIMEOUT
from shared import deliveries
from shared.configstore import ConfigStore
from shared.db.engine import as_utc, utcnow
from shared.db.models import Event, Lead
from shared.errors import PermanentError
from shared.flowconfig import EmailTarget
from shared.leaddata import display_fields
from shared.messaging import DeliverEmail


@dataclass(frozen=True, slots=True)
class LeadJob:
    lead_id: str
    event_id: str
    recipient_id: str
    claimed: deliveries.Claim
    target: EmailTarget
    columns: list[str]
    row: dict[str, Any]
    envelope: Envelope
    price: Decimal | None = None  # the recipient's, owed when the server takes the email
    once: bool = False  # an auction's post: never retried, a failure moves on at once

    @property
    def final(self) -> bool:
        return self.claimed.final


def claim(
    session: Session, configs: ConfigStore, message: DeliverEmail, *, holder: str, margin: float
) -> LeadJob:
    """The job for one lead, its delivery claimed for ``holder`` unless it is final;
    raises ``Busy`` while another worker holds the claim."""
    if message.event_id is None or message.lead_id is None:
        raise PermanentError("a real-time email names its lead and event")
    lead = session.get(Lead, message.lead_id)
    if lead is None:
        raise PermanentError(f"no lead {message.lead_id}")
    claimed = deliveries.claim(
        session,
        message.event_id,
        lease=deliveries.lease_for(DEFAULT_TIMEOUT + margin),
        holder=holder,
    )
    config = configs.get(lead.config_version)
    recipient = config.recipients.get(claimed.recipient_id)
    if recipient is None or recipient.email is None:
        raise PermanentError(f"recipient {claimed.recipient_id} has no email settings")
    flow = config.flows[lead.flow_id]
    step = session.get(Event, message.event_id)
    auctioned = step is not None and step.parent_event_id is not None
    return LeadJob(
        lead_id=lead.id,
        event_id=message.event_id,
        recipient_id=claimed.recipient_id,
        claimed=claimed,
        target=recipient.email,
        columns=list(flow.fields),
        row=display_fields(lead.fields),
        price=step.price if auctioned and step is not None else recipient.price,
        once=auctioned,
        envelope=Envelope(
            recipient_id=claimed.recipient_id,
            recipient_name=recipient.name,
            flows=[(lead.flow_id, flow.name)],
            at=as_utc(lead.received_at) or utcnow(),
            count=1,
            lead_id=lead.id,
            event_id=message.event_id,
        ),
    )
