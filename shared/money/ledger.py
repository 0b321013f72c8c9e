"""The ledger: one immutable row per charge or credit, written in the transaction of what
it accounts for (intake's for a source's cost, routing's for a recipient's revenue).
Amounts are ``Decimal`` to the cent, stored ``NUMERIC``; nothing here is ever updated."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, Table, insert, select

from shared.db.models import Base

COST, REVENUE, RETURN, CHARGEBACK = "cost", "revenue", "return", "chargeback"
_LEDGER: Table = Base.metadata.tables["ledger"]
_INSERT = insert(_LEDGER)


def source_party(flow_id: str, source_id: str) -> str:
    return f"{flow_id}/{source_id}"


@dataclass(frozen=True, slots=True)
class LeadOf:
    """The lead a row is about: reports group rows by its flow, source and day."""

    id: str
    flow_id: str
    source_id: str
    received_at: datetime


def entry(
    kind: str,
    lead: LeadOf,
    party_type: str,
    party: str,
    amount: Decimal,
    at: datetime,
    event_id: str | None = None,
) -> dict[str, Any]:
    """A row: charges positive, reversals (``return``, ``chargeback``) negative."""
    signed = -abs(amount) if kind in (RETURN, CHARGEBACK) else abs(amount)
    return {
        "lead_id": lead.id,
        "event_id": event_id,
        "party_type": party_type,
        "party": party,
        "flow_id": lead.flow_id,
        "source_id": lead.source_id,
        "received_at": lead.received_at,
        "kind": kind,
        "amount": signed,
        "at": at,
    }


def write(connection: Connection, rows: list[dict[str, Any]]) -> None:
    if rows:
        connection.execute(_INSERT, rows)


def of_lead(connection: Connection, lead_id: str) -> list[dict[str, Any]]:
    """A lead's rows, oldest first."""
    rows = connection.execute(
        select(_LEDGER).where(_LEDGER.c.lead_id == lead_id).order_by(_LEDGER.c.id)
    )
    return [dict(row._mapping) for row in rows]
