"""Rows for Core inserts on the hot paths (intake, router): every column as the ORM
would insert it, so a row written by a Core statement reads back like an ORM one."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, Insert


def event_row(
    *,
    id: str,
    lead_id: str,
    type: str,
    started_at: datetime,
    step: int | None = None,
    recipient_id: str | None = None,
    outcome: str | None = None,
    reason: str | None = None,
    steps_processed: int | None = None,
) -> dict[str, Any]:
    """A new event; one with an outcome is complete at once (0 ms). ``appended`` is left
    out so it stays SQL NULL, as an unset attribute does through the ORM."""
    done = outcome is not None
    return {
        "id": id,
        "lead_id": lead_id,
        "type": type,
        "step": step,
        "recipient_id": recipient_id,
        "outcome": outcome,
        "reason": reason,
        "price": Decimal(0),
        "started_at": started_at,
        "completed_at": started_at if done else None,
        "ms": 0 if done else None,
        "attempts": 0,
        "steps_processed": steps_processed,
        "parent_event_id": None,
    }


def insert_rows(connection: Connection, statement: Insert, rows: list[dict[str, Any]]) -> None:
    """Insert rows that may set different columns (an event with ``appended``, most
    without): one executemany per set of columns, in the rows' first order."""
    groups: dict[frozenset[str], list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault(frozenset(row), []).append(row)
    for group in groups.values():
        connection.execute(statement, group)
