"""Duplicate keys: of a lead a flow accepted, and of a lead a recipient is sent.

A flow's ``duplicates.keys`` lists keys, each a list of the flow's fields. A lead's key
is the hash of those fields' normal values (section 7: a lowercased e-mail, a national
phone number; the trimmed, case-folded text of a value its type could not read), scoped
to the flow or, with ``scope: source``, to the flow's source. A key with a blank field is
not used. The hashes are held in the ``submissions`` table for the flow's ``lookback``
(``shared.resubmits``): intake's transaction claims them insert-if-absent with the lead
(``services.intake.store``, with the resubmission keys: one read, one write), so of two
matching leads committed at the same moment by two intake processes exactly one gets
them; the other one's transaction sees the key taken and is tried again, and then finds
it.

Recipient duplicates (a recipient's ``duplicates.keys``) are held the same way, under the
recipient step's event id, when routing hands a lead to the recipient
(``shared.routing``): a lead whose key the recipient holds skips the step with reason
``Duplicate``. A delivery that ends other than delivered lets its keys go (``let_go``:
a step result settled by ``shared.gates.steps``, an email batch given up), so a later
match may be sent.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import Connection

from shared import resubmits
from shared.flowconfig import FlowDuplicates, LeadflowConfig, RecipientDuplicates
from shared.leaddata import compared
from shared.resubmits import HeldKey

REASON = "Duplicate"


def keys_of(
    flow_id: str, source_id: str, duplicates: FlowDuplicates, fields: Mapping[str, Any]
) -> list[HeldKey]:
    """The duplicate keys of a lead's typed ``fields`` (``leaddata.build_fields``)."""
    scope = source_id if duplicates.scope == "source" else ""
    return _keys(flow_id, scope, duplicates.keys, duplicates.lookback, fields)


def recipient_keys(
    recipient_id: str, duplicates: RecipientDuplicates, fields: Mapping[str, Any]
) -> list[HeldKey]:
    """The keys under which a recipient holds a lead it is sent (whatever the flow)."""
    return _keys("recipient", recipient_id, duplicates.keys, duplicates.lookback, fields)


def recipient_keys_in_flow(
    config: LeadflowConfig, flow_id: str, fields: Mapping[str, Any], from_step: int = 0
) -> list[HeldKey]:
    """The keys of a lead for every recipient with duplicate keys of its flow's steps
    from ``from_step`` on (to read a batch's keys in one statement before routing it)."""
    flow = config.flows.get(flow_id)
    keys: list[HeldKey] = []
    for step in flow.steps[from_step:] if flow is not None else []:
        for recipient_id in step.recipient_ids:
            recipient = config.recipients.get(recipient_id)
            if recipient is not None and recipient.duplicates is not None:
                keys.extend(recipient_keys(recipient_id, recipient.duplicates, fields))
    return keys


def let_go(
    connection: Connection,
    refused: Iterable[tuple[LeadflowConfig, str, str, Mapping[str, Any]]],
) -> None:
    """A recipient holds the keys only of the leads it took: let go of the keys of each
    (config of the lead, recipient id, step event id, lead's fields) it did not take."""
    held = []
    for config, recipient_id, event_id, fields in refused:
        recipient = config.recipients.get(recipient_id)
        if recipient is not None and recipient.duplicates is not None:
            held.append((event_id, recipient_keys(recipient_id, recipient.duplicates, fields)))
    resubmits.forget(connection, held)


def _keys(
    scope: str,
    within: str,
    names_of_keys: list[list[str]],
    lookback: float,
    fields: Mapping[str, Any],
) -> list[HeldKey]:
    typed = fields.get("typed") or {}
    keys = []
    for names in names_of_keys:
        values = [compared(typed.get(name)) for name in names]
        if any(v is None for v in values):
            continue
        material = "\0".join(["duplicate", *names, "\0", *(v or "" for v in values)])
        keys.append(HeldKey(resubmits.hash_of(scope, within, material.encode()), lookback))
    return keys
