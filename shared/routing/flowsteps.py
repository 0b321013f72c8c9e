"""A flow's steps run for one lead from where it is, until a step waits on a worker (or on
its recipient's opening hours) or the flow ends: filters, recipient steps with their
gates (criteria, pause, hours, caps, duplicates), auction steps (``auctions``), and the
end of the flow."""

from __future__ import annotations

import logging
from datetime import datetime
from decimal import Decimal

from shared.db.engine import as_utc, utcnow
from shared.flowconfig import LeadflowConfig
from shared.gates import caps, duplicates, hours, pausing
from shared.ids import new_id
from shared.leaddata import base_variables, recipient_results
from shared.messaging import FlowReply, StepDue
from shared.money.pricing import owed
from shared.routing import auctions
from shared.routing.records import Outbound, RoutedLead, StepEvent, Writes, handoff, ms, new_event
from shared.routing.sending import duplicate_for, send, waits
from shared.rules import evaluate
from shared.templates import render

logger = logging.getLogger(__name__)


def advance(
    lead: RoutedLead, events: list[StepEvent], config: LeadflowConfig, writes: Writes
) -> Outbound:
    if lead.state == "new":
        lead.state = writes.lead["state"] = "routing"
    outbound = _run_steps(lead, events, config, writes)
    writes.lead["step_index"] = lead.step_index
    writes.lead["waiting_event_id"] = lead.waiting_event_id
    writes.lead["sold"] = bool(lead.sold)
    return outbound


def _run_steps(
    lead: RoutedLead, events: list[StepEvent], config: LeadflowConfig, writes: Writes
) -> Outbound:
    flow = config.flows[lead.flow_id]
    received_at = as_utc(lead.received_at) or utcnow()
    variables = base_variables(lead.id, lead.flow_id, lead.source_id, received_at, lead.fields)
    variables.update(
        recipient_results(
            (e.recipient_id, e.outcome, e.reason, e.price, e.appended)
            for e in events
            if e.type == "recipient"
        )
    )
    index = lead.step_index
    while index < len(flow.steps):
        step = flow.steps[index]
        now = utcnow()
        if step.filter is not None:
            matched = evaluate(step.filter.rule_set, variables)
            reason = (
                render(step.filter.reason, variables) if matched and step.filter.reason else None
            )
            new_event(
                writes,
                events,
                lead.id,
                type="filter",
                step=index,
                now=now,
                outcome="stop" if matched else "continue",
                reason=reason,
            )
            if matched:
                lead.step_index = index
                return _finish(lead, events, step.filter.outcome, reason, writes)
            index += 1
            continue
        if step.auction is not None:
            outbound = auctions.step(lead, events, config, writes, index, variables, now)
            if outbound is not None:
                return outbound
            index += 1
            continue
        recipient_id = step.recipient or ""
        recipient = config.recipients[recipient_id]
        event_id = writes.reopen.id if writes.reopen is not None else new_id()
        gates = writes.gates
        skipped = None
        taken: list[caps.Bound] | None = []
        if step.criteria is not None and not evaluate(step.criteria, variables):
            skipped = "Recipient criteria not met"
        elif gates is not None and recipient_id in gates.paused:
            skipped = pausing.REASON
        elif gates is not None and not hours.is_open(
            recipient.schedule, recipient.timezone, gates.counters.now
        ):
            due = hours.next_opening(recipient.schedule, recipient.timezone, gates.counters.now)
            if recipient.when_closed != "hold" or due is None:
                skipped = hours.CLOSED_REASON
            else:
                return _hold(lead, events, writes, index, recipient_id, event_id, now, due)
        elif (
            gates is not None
            and (
                taken := gates.take(recipient_id, recipient, variables, owed(None, recipient.price))
            )
            is None
        ):
            skipped = caps.REASON
        elif duplicate_for(recipient_id, recipient, lead, event_id, writes):
            if gates is not None:
                gates.counters.give_back(taken or [])
            skipped = duplicates.REASON
        if skipped is not None:
            _unsent(writes, events, lead, index, recipient_id, event_id, now, "skip", skipped)
            # later rules read the skip at once, as they do after a resume
            variables.update(recipient_results([(recipient_id, "skip", skipped, Decimal(0), None)]))
            index += 1
            continue
        waiting = waits(recipient)
        # a lead left pending is sold at the recipient's price (what it will owe)
        price = Decimal(0) if waiting else owed(None, recipient.price)
        event = send(
            writes,
            events,
            lead.id,
            recipient_id,
            recipient,
            taken or [],
            now,
            step=index,
            event_id=event_id,
            price=price,
        )
        if waiting:
            lead.step_index = index
            lead.waiting_event_id = event.id
            logger.info(
                "lead handed to %s", recipient_id, extra={"lead_id": lead.id, "event_id": event.id}
            )
            return Outbound(messages=[handoff(lead, event, recipient)])
        variables.update(recipient_results([(recipient_id, "success", None, price, None)]))
        logger.info(
            "lead pending for %s", recipient_id, extra={"lead_id": lead.id, "event_id": event.id}
        )
        index += 1
    lead.step_index = index
    return _finish(lead, events, "success", None, writes)


def _unsent(
    writes: Writes,
    events: list[StepEvent],
    lead: RoutedLead,
    index: int,
    recipient_id: str,
    event_id: str,
    now: datetime,
    outcome: str,
    reason: str,
) -> StepEvent:
    """A recipient step's event that sends nothing: skipped, or held while it is closed."""
    return new_event(
        writes,
        events,
        lead.id,
        type="recipient",
        step=index,
        now=now,
        recipient_id=recipient_id,
        outcome=outcome,
        reason=reason,
        event_id=event_id,
    )


def _hold(
    lead: RoutedLead,
    events: list[StepEvent],
    writes: Writes,
    index: int,
    recipient_id: str,
    event_id: str,
    now: datetime,
    due: datetime,
) -> Outbound:
    """A closed recipient with ``when_closed: hold``: the step's event is ``pending`` and
    the lead waits on it until ``due`` (a ``StepDue`` in the router's delay tiers)."""
    event = _unsent(
        writes, events, lead, index, recipient_id, event_id, now, "pending", hours.CLOSED_REASON
    )
    lead.step_index = index
    lead.waiting_event_id = event.id
    logger.info(
        "%s is closed; step held until %s",
        recipient_id,
        due.isoformat(),
        extra={"lead_id": lead.id, "event_id": event.id},
    )
    return Outbound(messages=[StepDue(lead_id=lead.id, event_id=event.id, due_at=due.isoformat())])


def _accepted_price(events: list[StepEvent]) -> Decimal:
    accepted = (e.price or 0 for e in events if e.type == "recipient" and e.outcome == "success")
    return Decimal(sum(accepted, Decimal(0)))


def refresh_price(lead: RoutedLead, events: list[StepEvent], writes: Writes) -> None:
    price = _accepted_price(events)
    if price == lead.price:
        return
    lead.price = writes.lead["price"] = price
    source = next((e for e in events if e.type == "source"), None)
    if source is not None:
        source.price = price
        writes.source = {"key": source.id, "price": price}
    logger.info("lead price is now %g after a late step result", price, extra={"lead_id": lead.id})


def _finish(
    lead: RoutedLead, events: list[StepEvent], outcome: str, reason: str | None, writes: Writes
) -> Outbound:
    now = utcnow()
    price = _accepted_price(events)
    lead.state, lead.price = "done", price
    lead.waiting_event_id = None
    writes.lead.update(state="done", outcome=outcome, reason=reason, price=price, completed_at=now)
    source = next(e for e in events if e.type == "source")
    source.outcome, source.reason, source.price = outcome, reason, price
    writes.source = {
        "key": source.id,
        "outcome": outcome,
        "reason": reason,
        "price": price,
        "completed_at": now,
        "ms": ms(as_utc(source.started_at) or now, now),
        "steps_processed": sum(1 for e in events if _is_step(e)),
    }
    logger.info(
        "flow finished: %s%s",
        outcome,
        f" ({reason})" if reason else "",
        extra={"lead_id": lead.id, "event_id": source.id},
    )
    outbound = Outbound(finished=(lead.flow_id, outcome))
    if lead.reply_to:
        outbound.reply_to = lead.reply_to
        outbound.reply = FlowReply(lead_id=lead.id, outcome=outcome, reason=reason, price=price)
    return outbound


def _is_step(event: StepEvent) -> bool:
    """An event of one of the flow's steps (an auction's posts and pings belong to it)."""
    return event.type in ("filter", "recipient", "auction") and event.parent_event_id is None
