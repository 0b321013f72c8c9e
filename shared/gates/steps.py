"""The gates of a recipient step, for one routing transaction (SPEC sections 13, 14, 15):
the paused recipients, and the cap counters, every one the batch may touch locked at
once, in key order, after the leads. The steps whose results move their leads on are
settled first, once: their cap slots kept or given back, and the duplicate keys of a
recipient that did not take its lead let go."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal
from typing import Any, Protocol

from sqlalchemy import Connection

from shared import clock
from shared.flowconfig import LeadflowConfig, Recipient
from shared.gates import caps, duplicates, pausing
from shared.messaging import Message, StepCompleted
from shared.money import ledger
from shared.money.pricing import cents


class LeadAtStep(Protocol):
    """What the gates read of a locked lead (``shared.routing.RoutedLead``)."""

    id: str
    flow_id: str
    source_id: str
    received_at: datetime
    config_version: int
    state: str
    step_index: int
    waiting_event_id: str | None
    fields: dict[str, Any]


class StepResult(Protocol):
    """What the gates read of a lead's step event (``shared.routing.StepEvent``)."""

    id: str
    recipient_id: str | None
    outcome: str | None
    price: Decimal | None


@dataclass(slots=True)
class StepGates:
    """What a recipient step checks besides its criteria, for one transaction: the
    paused recipients, and the cap counters (their clock: ``counters.now``)."""

    counters: caps.Counters
    _paused: frozenset[str] | None = None

    @classmethod
    def read(cls, connection: Connection) -> StepGates:
        return cls(caps.Counters(connection, clock.now()))

    @property
    def paused(self) -> frozenset[str]:
        """Read once, when the transaction first reaches a recipient step (a batch that
        only finishes its leads never asks)."""
        if self._paused is None:
            self._paused = pausing.paused(self.counters.connection)
        return self._paused

    def recipient_bounds(
        self, config: LeadflowConfig, flow_id: str, from_step: int = 0
    ) -> list[caps.Bound]:
        """The caps of every capped recipient of a flow's steps from ``from_step`` on, once
        per step (to lock with the rest of the transaction's, in one ``Counters.lock``)."""
        flow = config.flows.get(flow_id)
        found: list[caps.Bound] = []
        for step in flow.steps[from_step:] if flow is not None else []:
            for recipient_id in step.recipient_ids:
                recipient = config.recipients.get(recipient_id)
                if recipient is not None and recipient.caps:
                    found += _recipient_bounds(recipient_id, recipient, self.counters.now)
        return found

    def take(
        self,
        recipient_id: str,
        recipient: Recipient,
        variables: Mapping[str, Any],
        expected: Decimal = Decimal(0),
    ) -> list[caps.Bound] | None:
        """A slot of each of the recipient's caps that counts this lead (the slots taken;
        a revenue cap's counts ``expected``, the revenue the lead should bring); None
        when one is full."""
        if not recipient.caps:
            return []
        counting = [
            replace(b, expected=expected) if b.cap.max_revenue is not None else b
            for b in _recipient_bounds(recipient_id, recipient, self.counters.now)
            if b.cap.counts(variables)
        ]
        self.counters.lock([b for b in counting if b.counter not in self.counters])
        return counting if self.counters.take(counting) else None


def _recipient_bounds(recipient_id: str, recipient: Recipient, now: datetime) -> list[caps.Bound]:
    return caps.bounds("recipient", recipient_id, recipient.caps, recipient.timezone, now)


def settle_and_read(
    connection: Connection,
    config_for: Any,
    leads: Mapping[str, LeadAtStep],
    events: Mapping[str, Sequence[StepResult]],
    messages: Sequence[Message],
) -> StepGates:
    """The batch's gates: the paused set, and every cap counter the batch may touch locked
    at once, in key order, after the leads. The steps whose results move their leads on
    are settled here, once: their cap slots kept or given back, and the duplicate keys of
    a recipient that did not take its lead let go; a sale's revenue goes in the ledger."""
    gates = StepGates.read(connection)
    configs = {lead.config_version: config_for(lead.config_version) for lead in leads.values()}
    recipients = [r for c in configs.values() for r in c.recipients.values()]
    capped = any(r.caps for r in recipients)
    ended = {
        m.event_id: leads[m.lead_id]
        for m in messages
        if isinstance(m, StepCompleted)
        and m.lead_id in leads
        and leads[m.lead_id].waiting_event_id == m.event_id
    }
    steps = {e.id: e for lead_events in events.values() for e in lead_events if e.id in ended}
    results = {
        e.id: (e.outcome, e.price or Decimal(0))
        for e in steps.values()
        if e.outcome in ("success", "failure", "error")
    }
    _book_revenue(ended, steps, results, connection, gates.counters.now)
    if any(r.duplicates for r in recipients):
        _forget_refused(configs, ended, steps, results, connection)
    if not capped:
        return gates
    holds = caps.holds_of(
        connection,
        sorted(
            event_id
            for event_id in results
            if _capped(configs[ended[event_id].config_version], steps[event_id].recipient_id)
        ),
    )
    bounds: list[caps.Bound] = []
    first_step: dict[str, int] = {}
    for message in messages:
        lead = leads.get(getattr(message, "lead_id", ""))
        if lead is not None and lead.state != "done":
            # a step result moves the lead past its step (an auction's may stay in it);
            # anything else starts at it
            start = lead.step_index
            if isinstance(message, StepCompleted) and not _in_auction(configs, lead):
                start += 1
            first_step[lead.id] = min(start, first_step.get(lead.id, start))
    for lead_id, start in first_step.items():
        lead = leads[lead_id]
        bounds += gates.recipient_bounds(configs[lead.config_version], lead.flow_id, start)
    gates.counters.lock(bounds, settling=caps.to_lock(holds, results))
    caps.settle(gates.counters, holds, results)
    return gates


def _in_auction(configs: Mapping[int, LeadflowConfig], lead: LeadAtStep) -> bool:
    flow = configs[lead.config_version].flows.get(lead.flow_id)
    steps = flow.steps if flow is not None else []
    return 0 <= lead.step_index < len(steps) and steps[lead.step_index].auction is not None


def _capped(config: LeadflowConfig, recipient_id: str | None) -> bool:
    recipient = config.recipients.get(recipient_id or "")
    return recipient is not None and bool(recipient.caps)


def _book_revenue(
    ended: Mapping[str, LeadAtStep],
    steps: Mapping[str, StepResult],
    results: Mapping[str, tuple[str | None, Decimal]],
    connection: Connection,
    now: datetime,
) -> None:
    """A recipient that bought a lead owes its price: a ``revenue`` row in the ledger."""
    ledger.write(
        connection,
        [
            ledger.entry(
                ledger.REVENUE,
                ledger.LeadOf(
                    ended[event_id].id,
                    ended[event_id].flow_id,
                    ended[event_id].source_id,
                    ended[event_id].received_at,
                ),
                "recipient",
                steps[event_id].recipient_id or "",
                cents(price),
                now,
                event_id,
            )
            for event_id, (outcome, price) in results.items()
            if outcome == "success" and cents(price) > 0
        ],
    )


def _forget_refused(
    configs: dict[int, LeadflowConfig],
    ended: Mapping[str, LeadAtStep],
    steps: Mapping[str, StepResult],
    results: Mapping[str, tuple[str | None, Decimal]],
    connection: Connection,
) -> None:
    """The duplicate keys of a step that ended other than a sale go."""
    duplicates.let_go(
        connection,
        (
            (
                configs[ended[event_id].config_version],
                steps[event_id].recipient_id or "",
                event_id,
                ended[event_id].fields,
            )
            for event_id, (outcome, _) in results.items()
            if outcome != "success"
        ),
    )
