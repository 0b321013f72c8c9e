"""Operators' lists paged by key (SPEC 16: never OFFSET), on SQLite and PostgreSQL: read
page after page, every row comes once and in order, ties in time broken by id."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import insert

from shared.db.engine import SessionFactory, transaction
from shared.db.models import DeadLetter, ReturnRequest
from shared.deadletters import parked_messages
from shared.money import returns

START = datetime(2031, 5, 1, tzinfo=UTC)
# seven rows, three of them at one moment
MINUTES = [0, 1, 1, 1, 2, 3, 4]


@pytest.fixture
def sessions(fresh_sessions: SessionFactory) -> SessionFactory:
    return fresh_sessions


def test_parked_messages_page_after_page_come_oldest_first_each_once(
    sessions: SessionFactory,
) -> None:
    # given seven parked messages, three parked at one moment
    with transaction(sessions) as session:
        session.execute(
            insert(DeadLetter),
            [
                {
                    "queue": "http_delivery",
                    "message_id": secrets.token_hex(8),
                    "attempts": 1,
                    "failures": {},
                    "body": "{}",
                    "parked_at": START + timedelta(minutes=m),
                    "state": "parked",
                }
                for m in MINUTES
            ],
        )

    # when they are read three at a time, each page after the last one's row
    seen: list[DeadLetter] = []
    after = None
    while True:
        page = parked_messages(sessions, after=after, limit=3)
        seen += page
        if len(page) < 3:
            break
        after = page[-1].id

    # then every message came once, oldest first
    assert len({m.id for m in seen}) == len(seen) == len(MINUTES)
    assert [(m.parked_at, m.id) for m in seen] == sorted((m.parked_at, m.id) for m in seen)


def test_returns_page_after_page_come_newest_first_each_once(sessions: SessionFactory) -> None:
    # given seven returns waiting, three asked for at one moment
    with transaction(sessions) as session:
        session.execute(
            insert(ReturnRequest),
            [
                {
                    "id": secrets.token_hex(12),
                    "lead_id": secrets.token_hex(12),
                    "event_id": secrets.token_hex(12),
                    "recipient_id": "buyer",
                    "status": "requested",
                    "requested_at": START + timedelta(minutes=m),
                }
                for m in MINUTES
            ],
        )

    # when they are read three at a time
    seen: list[dict[str, object]] = []
    before = None
    while True:
        with sessions() as session:
            page = returns.listing(session, "requested", before=before, limit=3)
        seen += page
        if len(page) < 3:
            break
        before = str(page[-1]["id"])

    # then every return came once, newest first
    assert len({r["id"] for r in seen}) == len(seen) == len(MINUTES)
    keys = [(str(r["requested_at"]), str(r["id"])) for r in seen]
    assert keys == sorted(keys, reverse=True)
