"""The console's flows page counts today's leads (SPEC 16) on the calendar day of each
flow's time zone (SPEC 12-16: windows of time are calendar windows in the zone that
applies), on SQLite and PostgreSQL."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import insert

from services.console.queries import today_by_flow
from shared.db.engine import SessionFactory, make_engine, make_session_factory, transaction
from shared.db.models import Lead


@pytest.fixture(scope="module")
def sessions(database_url: str) -> Iterator[SessionFactory]:
    engine = make_engine(database_url)
    yield make_session_factory(engine)
    engine.dispose()


def received(sessions: SessionFactory, flow_id: str, *times: str) -> None:
    with transaction(sessions) as session:
        session.execute(
            insert(Lead),
            [
                {
                    "id": secrets.token_hex(12),
                    "flow_id": flow_id,
                    "source_id": "web",
                    "config_version": 1,
                    "received_at": datetime.fromisoformat(at).replace(tzinfo=UTC),
                    "state": "done",
                    "outcome": "success",
                    "price": 0,
                    "fields": {},
                    "step_index": 0,
                    "version": 1,
                }
                for at in times
            ],
        )


def test_todays_counts_start_at_midnight_in_each_flows_zone(sessions: SessionFactory) -> None:
    # given two flows, one in UTC+14 and one in UTC-8, each with leads either side of
    # its own local midnight of 2031-06-02
    east, west = f"kiri{secrets.token_hex(3)}", f"la{secrets.token_hex(3)}"
    # Kiritimati's midnight is 10:00 UTC the day before
    received(sessions, east, "2031-06-01T09:59", "2031-06-01T10:01", "2031-06-01T23:00")
    # Los Angeles' (PDT, UTC-7) is 07:00 UTC
    received(sessions, west, "2031-06-02T06:59", "2031-06-02T07:01")

    # when today's counts are read at 2031-06-02 08:00 UTC (22:00 in Kiritimati)
    now = datetime(2031, 6, 2, 8, 0, tzinfo=UTC)
    zones = {east: "Pacific/Kiritimati", west: "America/Los_Angeles"}
    with sessions() as session:
        counts = today_by_flow(session.connection(), now, zones)

    # then each flow counts only the leads of its own local today
    assert counts[east] == {"success": 2}
    assert counts[west] == {"success": 1}
