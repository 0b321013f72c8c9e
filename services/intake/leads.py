"""A submission becomes a lead: the flow's hours, typed fields, required fields,
acceptance criteria, rows.

``new_lead`` returns the rows as column values, which the intake's writer inserts with
Core statements, and the lead's resubmission keys (``shared.resubmits``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from shared import clock
from shared.db.rows import event_row
from shared.flowconfig import Criterion, Flow
from shared.gates import duplicates, hours
from shared.ids import new_id
from shared.leaddata import base_variables, build_fields, contacts, is_blank
from shared.money.pricing import source_cost
from shared.resubmits import HeldKey
from shared.rules import evaluate
from shared.templates import render


@dataclass
class NewLead:
    """One submission's rows: ``leads`` and its ``source`` event; and the keys that make
    a later copy of it a resubmission."""

    lead_row: dict[str, Any]
    event_row: dict[str, Any]
    keys: list[HeldKey] = field(default_factory=list)
    duplicate_keys: list[HeldKey] = field(default_factory=list)  # held once it is accepted

    def refuse(self, reason: str, duplicate_of: str | None = None) -> None:
        """The lead fails at intake after all (a gate of the store's transaction: a
        duplicate of ``duplicate_of``, a full cap)."""
        received_at = self.lead_row["received_at"]
        self.lead_row.update(
            state="done",
            outcome="failure",
            reason=reason,
            completed_at=received_at,
            reply_to=None,
            duplicate_of=duplicate_of,
            cost=None,  # a lead failed at intake costs nothing
            accepted=False,
            ping_id=None,
        )
        self.event_row.update(outcome="failure", reason=reason, steps_processed=0)
        self.event_row["completed_at"] = received_at
        self.event_row["ms"] = 0

    @property
    def enters_flow(self) -> bool:
        return self.lead_row["state"] == "new"

    @property
    def lead_id(self) -> str:
        return str(self.lead_row["id"])

    @property
    def event_id(self) -> str:
        return str(self.event_row["id"])

    @property
    def cost(self) -> Decimal | None:
        """What its source is paid for it (None: no cost configured, or it failed)."""
        return self.lead_row["cost"]

    @property
    def outcome(self) -> str | None:
        return self.lead_row["outcome"]

    @property
    def reason(self) -> str | None:
        return self.lead_row["reason"]


def _first_failure(criteria: list[Criterion], variables: Mapping[str, Any]) -> str | None:
    for criterion in criteria:
        if not evaluate(criterion.rule_set, variables):
            return render(criterion.reason, variables) if criterion.reason else "Lead was rejected"
    return None


def new_lead(
    *,
    config_version: int,
    flow_id: str,
    flow: Flow,
    source_id: str,
    submitted: Mapping[str, Any],
    received_at: datetime,
    reply_to: str | None,
    keys: list[HeldKey] | None = None,
) -> NewLead:
    """Build the rows for one submission; the lead enters the flow only when accepted."""
    lead_id = new_id()
    fields = build_fields(flow, submitted)
    source = flow.sources[source_id]
    criteria = flow.acceptance_criteria or source.acceptance_criteria
    priced = source.cost is not None or bool(source.cost_rules)
    # what the criteria and the cost rules read, built once when either is there
    variables = (
        base_variables(lead_id, flow_id, source_id, received_at, fields)
        if criteria or priced
        else {}
    )
    outcome: str | None = None
    reason: str | None = None
    if not flow.enabled:
        outcome, reason = "error", "The flow is disabled"
    elif not hours.is_open(flow.schedule, flow.timezone, clock.now()):
        outcome, reason = "failure", hours.FLOW_CLOSED_REASON
    else:
        missing = [f for f, d in flow.fields.items() if d.required and is_blank(fields, f)]
        if missing:
            outcome, reason = "failure", ", ".join(f"{f} is required" for f in missing)
        elif criteria:
            reason = _first_failure(flow.acceptance_criteria, variables) or _first_failure(
                source.acceptance_criteria, variables
            )
            outcome = "failure" if reason else None
    done = outcome is not None
    cost = None
    if not done and priced:
        cost = source_cost(source.cost, source.cost_rules, variables)
    # Every column, as the ORM would insert it (``version`` starts at 1).
    lead = {
        "id": lead_id,
        "flow_id": flow_id,
        "source_id": source_id,
        "config_version": config_version,
        "received_at": received_at,
        "completed_at": received_at if done else None,
        "state": "done" if done else "new",
        "outcome": outcome,
        "reason": reason,
        "price": Decimal(0),
        "fields": fields,
        "step_index": 0,
        "waiting_event_id": None,
        "reply_to": None if done else reply_to,
        "version": 1,
        "duplicate_of": None,
        "cost": cost,
        "accepted": not done,
        "sold": False,
        "returned": False,
        "ping_id": None,
        **contacts(fields),
    }
    event = event_row(
        id=new_id(),
        lead_id=lead_id,
        type="source",
        started_at=received_at,
        outcome=outcome,
        reason=reason,
        steps_processed=0 if done else None,
    )
    held = [] if done else duplicates.keys_of(flow_id, source_id, flow.duplicates, fields)
    return NewLead(lead_row=lead, event_row=event, keys=keys or [], duplicate_keys=held)
