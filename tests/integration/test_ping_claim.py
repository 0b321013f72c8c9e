"""A ping is posted once: of posts taking it at the same moment on many connections,
exactly one gets it (one conditional update, never a read followed by a write)."""

from __future__ import annotations

import secrets
import threading
from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal

import pytest

from shared import pings
from shared.db.engine import SessionFactory, make_engine, make_session_factory, transaction, utcnow


@pytest.fixture
def sessions(database_url: str) -> Iterator[SessionFactory]:
    engine = make_engine(database_url, pool_size=8)
    yield make_session_factory(engine)
    engine.dispose()


def test_of_posts_racing_for_one_ping_exactly_one_takes_it(sessions: SessionFactory) -> None:
    # given a ping answered with a quote
    now = utcnow()
    ping = pings.StoredPing(
        id=secrets.token_hex(12),
        flow_id="f",
        source_id="s",
        config_version=1,
        fields={"state": "TX"},
        outcome="success",
        reason=None,
        price=Decimal("4.00"),
        created_at=now,
        expires_at=now + timedelta(minutes=5),
        lead_id=None,
    )
    with transaction(sessions) as session:
        pings.store(session.connection(), [pings.Answered(ping, "k" * 64, 5, [])])

    # when eight posts take it at once
    won: list[str] = []
    start = threading.Barrier(8)

    def take(lead_id: str) -> None:
        start.wait()
        with transaction(sessions) as session:
            if pings.claim(session.connection(), ping.id, lead_id):
                won.append(lead_id)

    threads = [threading.Thread(target=take, args=(f"lead-{i}",)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    # then exactly one did, and the ping names it
    assert len(won) == 1
    with sessions() as session:
        stored = pings.load(session.connection(), ping.id)
    assert stored is not None and stored.lead_id == won[0]
    assert pings.refusal(stored, "f", "s", utcnow()) == pings.DUPLICATE_REASON
