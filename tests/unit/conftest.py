"""The fast tier's rule, enforced: a unit test opens no network connection (not even to
127.0.0.1: no RabbitMQ, no PostgreSQL, no HTTP server of its own) and starts no process.
SQLite files under ``tmp_path`` are fine. A test that tries fails where it tries, or at
teardown when the code under test caught that failure (tests/support/offline.py)."""

from __future__ import annotations

from collections.abc import Generator, Iterator

import pytest

from tests.support.offline import ADVICE, Offline

#: Whether a test's own call failed (a refusal it met is then reported already).
CALL_FAILED = pytest.StashKey[bool]()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.when == "call":
        item.stash[CALL_FAILED] = report.failed
    return report


@pytest.fixture(autouse=True)
def offline(monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> Iterator[Offline]:
    guard = Offline(monkeypatch)
    yield guard
    if guard.tried and not request.node.stash.get(CALL_FAILED, False):
        pytest.fail(f"a unit test tried {', '.join(dict.fromkeys(guard.tried))}; {ADVICE}")


@pytest.fixture
def broker_url() -> str:
    pytest.fail(f"a unit test asked for a RabbitMQ vhost; {ADVICE}")


@pytest.fixture
def database_url() -> str:
    pytest.fail(f"a unit test asked for the test run's database; {ADVICE}")
