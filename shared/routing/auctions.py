"""Auction steps (SPEC section 12): the bids asked for by a worker (``RunAuction``) or read
from the lead's ping, posted best first through ``sending.send``, each post's end going
on with the next bid, and the step's end (buyer, price and bids, or ``no buyer``)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from shared import auction, pings
from shared.db.engine import as_utc, utcnow
from shared.errors import PermanentError
from shared.flowconfig import LeadflowConfig
from shared.gates import hours
from shared.ids import new_id
from shared.messaging import (
    RunAuction,
)
from shared.routing.records import Outbound, RoutedLead, StepEvent, Writes, handoff, ms, new_event
from shared.routing.sending import duplicate_for, send, waits
from shared.rules import evaluate

logger = logging.getLogger(__name__)


def step(
    lead: RoutedLead,
    events: list[StepEvent],
    config: LeadflowConfig,
    writes: Writes,
    index: int,
    variables: dict[str, Any],
    now: datetime,
) -> Outbound | None:
    """An auction step reached, or gone on with (``writes.auction``): its bids asked for
    (the lead waits on the step's event), its next bid posted (the lead waits on the
    post), or its end (None: the flow goes on)."""
    step = config.flows[lead.flow_id].steps[index]
    assert step.auction is not None
    event = writes.auction
    writes.auction = None
    if event is None:
        if step.criteria is not None and not evaluate(step.criteria, variables):
            new_event(
                writes,
                events,
                lead.id,
                type="auction",
                step=index,
                now=now,
                outcome="skip",
                reason="Recipient criteria not met",
            )
            return None
        event = new_event(writes, events, lead.id, type="auction", step=index, now=now)
    gates = writes.gates
    if gates is None:
        raise PermanentError("an auction step is run with its transaction's gates")
    connection = gates.counters.connection
    bids = pings.step_bids(pings.bids_of_lead(connection, lead.id), index)
    # a lead posted against a ping is never pinged again: its bids are the ping's, each
    # auction's (none collected for this one: no buyer)
    if not bids and not (event.appended or {}).get("collected") and lead.ping_id is None:
        lead.step_index, lead.waiting_event_id = index, event.id
        logger.info("auction: asking the bidders", extra={"lead_id": lead.id, "event_id": event.id})
        return Outbound(messages=[RunAuction(lead_id=lead.id, event_id=event.id)])
    tried = {e.recipient_id for e in events if e.parent_event_id == event.id}
    for bid in auction.rank(bids, step.auction.floor):
        recipient = config.recipients.get(bid.recipient_id)
        if bid.recipient_id in tried or recipient is None:
            continue
        if bid.recipient_id in gates.paused or not hours.is_open(
            recipient.schedule, recipient.timezone, gates.counters.now
        ):
            continue
        taken = gates.take(bid.recipient_id, recipient, variables, bid.amount)
        if taken is None:
            continue
        post_id = new_id()
        if duplicate_for(bid.recipient_id, recipient, lead, post_id, writes):
            gates.counters.give_back(taken)
            continue
        waiting = waits(recipient)
        post = send(
            writes,
            events,
            lead.id,
            bid.recipient_id,
            recipient,
            taken,
            now,
            step=None,
            event_id=post_id,
            parent_event_id=event.id,
            price=bid.amount,
            appended={"ping": {"reference": bid.reference}} if bid.reference else None,
        )
        logger.info(
            "auction: posting to %s at its bid of %s",
            bid.recipient_id,
            bid.amount,
            extra={"lead_id": lead.id, "event_id": post.id},
        )
        if waiting:
            lead.step_index, lead.waiting_event_id = index, post.id
            return Outbound(messages=[handoff(lead, post, recipient)])
        _end(writes, event, bids, "success", None, bid.recipient_id, bid.amount)
        return None
    _end(writes, event, bids, "failure", auction.NO_BUYER_REASON, None, Decimal(0))
    return None


def resumed(
    lead: RoutedLead,
    events: list[StepEvent],
    step_event: StepEvent,
    writes: Writes,
) -> None:
    """The bids of an auction step are in, or one of its posts ended: a sale ends the
    step (the flow goes on past it); anything else goes on with the next bid (the flow
    runs the step again with ``writes.auction``). The caller then advances the lead."""
    auction_event = step_event
    if step_event.type != "auction":
        parent = next((e for e in events if e.id == step_event.parent_event_id), None)
        if parent is None:
            raise PermanentError(f"auction post {step_event.id} has no auction step event")
        auction_event = parent
        if step_event.outcome is None:
            raise PermanentError(f"step event {step_event.id} has no outcome yet")
    lead.waiting_event_id = None
    if step_event.type == "recipient" and step_event.outcome == "success":
        lead.sold = True
        gates = writes.gates
        bids = (
            pings.step_bids(pings.bids_of_lead(gates.counters.connection, lead.id), lead.step_index)
            if gates is not None
            else []
        )
        price = step_event.price or Decimal(0)
        _end(writes, auction_event, bids, "success", None, step_event.recipient_id, price)
        lead.step_index += 1
    else:
        writes.auction = auction_event


def _end(
    writes: Writes,
    event: StepEvent,
    bids: Sequence[auction.Bid],
    outcome: str,
    reason: str | None,
    recipient_id: str | None,
    price: Decimal,
) -> None:
    """The auction step's event: the buyer, its price and the bids; or ``no buyer``."""
    now = utcnow()
    event.outcome, event.reason, event.recipient_id, event.price = (
        outcome,
        reason,
        recipient_id,
        price,
    )
    event.appended = {**(event.appended or {}), "bids": [bid.to_dict() for bid in bids]}
    writes.updated.append(
        {
            "key": event.id,
            "outcome": outcome,
            "reason": reason,
            "recipient_id": recipient_id,
            "price": price,
            "appended": event.appended,
            "completed_at": now,
            "ms": ms(as_utc(event.started_at) or now, now),
        }
    )
    logger.info(
        "auction ended: %s%s",
        outcome,
        f" to {recipient_id} at {price}" if recipient_id else f" ({reason})",
        extra={"event_id": event.id},
    )
