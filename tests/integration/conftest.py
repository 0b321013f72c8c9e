"""Shared fixtures of the integration tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from shared.db.engine import SessionFactory, make_engine, make_session_factory
from shared.db.migrate import upgrade
from tests.support.infra import fresh_database, rabbit_vhost


@pytest.fixture
def fresh_sessions(tmp_path: Path) -> Iterator[SessionFactory]:
    """Sessions of a database of the test's own (SQLite, or PostgreSQL with
    LEADFLOW_TEST_DATABASE_URL), migrated to the newest schema."""
    with fresh_database(str(tmp_path)) as url:
        upgrade(url)
        engine = make_engine(url, pool_size=20)
        yield make_session_factory(engine)
        engine.dispose()


@pytest.fixture(params=["classic", "quorum"])
def queues(request: pytest.FixtureRequest) -> Iterator[tuple[str, str]]:
    """A vhost of its own (no other worker of the test run consumes there), per queue type."""
    with rabbit_vhost() as url:
        yield url, request.param
