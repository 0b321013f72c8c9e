"""An auction step's bids, asked for by an HTTP delivery worker (``RunAuction``): a lead
submitted without a ping reaches an auction step, and its bidders are pinged here, on the
worker's event loop, all at once and within the auction's deadline (``shared.auction``).

Two short transactions around the fan-out: ``prepare`` reads the lead, its step and the
bidders the gates let bid, and claims the asking (``asking_since`` on the step's event,
locked: a copy of the message handled meanwhile waits, ``Busy``, instead of pinging the
bidders a second time; a worker that died holds it no longer than the auction's timeout
and ``CLAIM_MARGIN``); ``record`` stores the bids and marks the step's event
``collected`` (a copy of the message finds it so and asks nobody again). The worker then
reports the step to routing, which posts the best bid.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from shared import auction, clock, pings
from shared.auction import Bid
from shared.configstore import ConfigStore
from shared.db.engine import as_utc, utcnow
from shared.db.models import Event, Lead
from shared.errors import Busy, PermanentError
from shared.flowconfig import AuctionStep, LeadflowConfig
from shared.leaddata import base_variables
from shared.messaging import RunAuction

#: How long past its auction's timeout a claimed asking is left to its worker.
CLAIM_MARGIN = timedelta(seconds=10)
#: How a second copy of a ``RunAuction`` waits for the worker asking the bidders.
BUSY_RETRY_SCHEDULE = (1.0, 5.0)


@dataclass(frozen=True, slots=True)
class Asking:
    """Who is asked for a bid on one lead's auction step, and with what."""

    lead_id: str
    event_id: str
    flow_id: str
    source_id: str
    step: int
    auction: AuctionStep
    config: LeadflowConfig
    bidders: list[str]
    variables: dict[str, Any]
    flow_fields: list[str]


def prepare(session: Session, configs: ConfigStore, message: RunAuction) -> Asking | None:
    """The asking; None when the step's bids are in already (a copy of the message)."""
    lead = session.get(Lead, message.lead_id)
    event = session.get(Event, message.event_id, with_for_update=True)
    if lead is None or event is None or event.lead_id != lead.id or event.type != "auction":
        raise PermanentError(f"no auction step {message.event_id} of lead {message.lead_id}")
    appended = event.appended or {}
    if event.outcome is not None or appended.get("collected"):
        return None
    config = configs.get(lead.config_version, session)
    flow = config.flows[lead.flow_id]
    step = flow.steps[event.step or 0]
    if step.auction is None:
        raise PermanentError(f"step {event.step} of flow {lead.flow_id} is not an auction")
    now = utcnow()
    since = appended.get("asking_since")
    held = timedelta(seconds=step.auction.timeout) + CLAIM_MARGIN
    if since is not None and now - datetime.fromisoformat(since) < held:
        raise Busy(f"the bidders of {event.id} are being asked", BUSY_RETRY_SCHEDULE)
    event.appended = {**appended, "asking_since": now.isoformat()}
    variables = base_variables(
        lead.id, lead.flow_id, lead.source_id, as_utc(lead.received_at) or utcnow(), lead.fields
    )
    gates = pings.ReadGates(session.connection(), clock.now())
    return Asking(
        lead_id=lead.id,
        event_id=event.id,
        flow_id=lead.flow_id,
        source_id=lead.source_id,
        step=event.step or 0,
        auction=step.auction,
        config=config,
        bidders=auction.eligible(step.auction, config, variables, lead.fields, gates),
        variables=variables,
        flow_fields=list(flow.fields),
    )


def record(session: Session, asking: Asking, bids: list[Bid]) -> None:
    """Store the bids (once: a copy that lost the race stores nothing)."""
    event = session.get(Event, asking.event_id, with_for_update=True)
    if event is None or (event.appended or {}).get("collected"):
        return
    of = pings.BidsOf(
        asking.flow_id,
        asking.source_id,
        utcnow(),
        lead_id=asking.lead_id,
        event_id=asking.event_id,
    )
    pings.write_bids(session.connection(), [(asking.step, bid) for bid in bids], of)
    event.appended = {**(event.appended or {}), "collected": True}


def give_up(session: Session, event_id: str) -> None:
    """No bids could be asked for: the step goes on without any."""
    event = session.get(Event, event_id, with_for_update=True)
    if event is not None and not (event.appended or {}).get("collected"):
        event.appended = {**(event.appended or {}), "collected": True}
