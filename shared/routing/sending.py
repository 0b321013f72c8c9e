"""Handing a lead to a recipient, for a recipient step and an auction's post alike: the
step's event and its delivery (``send``), whether the step then waits on a worker
(``waits``), and the recipient's duplicate keys (``duplicate_for``)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from shared.flowconfig import Recipient
from shared.gates import caps, duplicates
from shared.routing.records import RoutedLead, StepEvent, Writes, new_event

logger = logging.getLogger(__name__)


def waits(recipient: Recipient) -> bool:
    """Whether the step waits on a delivery worker (HTTP, real-time email); otherwise the
    lead is left pending for a batch or a download and the flow goes on."""
    return not recipient.leaves_pending


def send(
    writes: Writes,
    events: list[StepEvent],
    lead_id: str,
    recipient_id: str,
    recipient: Recipient,
    taken: Sequence[caps.Bound],
    now: datetime,
    *,
    step: int | None,
    event_id: str,
    parent_event_id: str | None = None,
    price: Decimal = Decimal(0),
    appended: dict[str, Any] | None = None,
) -> StepEvent:
    """A step that sends the lead to a recipient (``price``: what a lead left pending owes,
    an auction's post its bid): its event, and its delivery holding the cap slots
    ``taken`` (``queued`` for a worker, or ``pending``: it keeps them at once, and
    its revenue counts in them now; a batch given up gives them back)."""
    waiting = waits(recipient)
    if not waiting and writes.gates is not None:
        writes.gates.counters.add_revenue(taken, price)
    event = new_event(
        writes,
        events,
        lead_id,
        type="recipient",
        step=step,
        now=now,
        recipient_id=recipient_id,
        outcome=None if waiting else "success",
        event_id=event_id,
        parent_event_id=parent_event_id,
        price=price,
        appended=appended,
    )
    writes.deliveries.append(
        {
            "event_id": event.id,
            "lead_id": lead_id,
            "recipient_id": recipient_id,
            "kind": recipient.kind,
            "status": "queued" if waiting else "pending",
            "attempts": 0,
            "cap_holds": caps.holding(taken),
            "created_at": now,
            "updated_at": now,
        }
    )
    return event


def duplicate_for(
    recipient_id: str, recipient: Recipient, lead: RoutedLead, event_id: str, writes: Writes
) -> bool:
    """Whether the recipient holds a key of this lead (it skips the step); if not, the
    lead's keys are now held for it under the step's event."""
    if recipient.duplicates is None or writes.held is None:
        return False
    keys = duplicates.recipient_keys(recipient_id, recipient.duplicates, lead.fields)
    if not keys:
        return False
    writes.held.read(keys)  # read with the batch's already, unless routed alone
    (earlier,) = writes.held.take([(event_id, keys)])
    if earlier is None:
        return False
    logger.info(
        "%s already has this lead (step %s); skipped",
        recipient_id,
        earlier,
        extra={"lead_id": lead.id},
    )
    return True
