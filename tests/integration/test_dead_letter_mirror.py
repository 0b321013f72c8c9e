"""The database mirror of parked messages: one row per message, refreshed when it is parked
again."""

from __future__ import annotations

import pytest
from sqlalchemy import select, update

from shared.db.engine import SessionFactory, transaction
from shared.db.models import DeadLetter
from shared.deadletters import mirror_dead_letter
from shared.messaging import ParkedMessage


@pytest.fixture
def sessions(fresh_sessions: SessionFactory) -> SessionFactory:
    return fresh_sessions


def parked(attempts: int, reason: str) -> ParkedMessage:
    return ParkedMessage(
        queue="deliver.http",
        message_id="m-1",
        payload={"lead_id": "l-1", "event_id": "e-1", "recipient_id": "r-1"},
        attempts=attempts,
        failures=[{"reason": reason}],
        body='{"lead_id": "l-1"}',
    )


def test_a_message_parked_again_refreshes_its_one_mirror_row(sessions: SessionFactory) -> None:
    # given a parked message whose mirror row an operator has replayed
    with transaction(sessions) as session:
        mirror_dead_letter(session, parked(2, "HTTP 503"))
    with transaction(sessions) as session:
        session.execute(update(DeadLetter).values(state="replayed"))

    # when the same message is parked again
    with transaction(sessions) as session:
        mirror_dead_letter(session, parked(3, "HTTP 500"))

    # then its one row says so
    with sessions() as session:
        rows = list(session.scalars(select(DeadLetter)))
    assert len(rows) == 1
    row = rows[0]
    assert (row.message_id, row.queue, row.lead_id, row.event_id, row.recipient_id) == (
        "m-1",
        "deliver.http",
        "l-1",
        "e-1",
        "r-1",
    )
    assert (row.attempts, row.last_reason, row.state, row.resolved_at) == (
        3,
        "HTTP 500",
        "parked",
        None,
    )
    assert row.failures == {"failures": [{"reason": "HTTP 500"}]}
