"""Shared fixtures: a RabbitMQ vhost and a migrated database for this test run."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from shared.db.migrate import upgrade
from tests.support.infra import fresh_database, rabbit_vhost


@pytest.fixture(scope="session")
def broker_url() -> Iterator[str]:
    with rabbit_vhost() as url:
        yield url


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with fresh_database(str(tmp_path_factory.mktemp("db"))) as url:
        upgrade(url)
        yield url


#: Modules driving a browser: Playwright's sync API keeps an event loop running in the
#: main thread once started, so an ``asyncio.run`` of any later test would fail. They run
#: in a pytest run of their own (``make test``); collected with other tests, they are left
#: out (run them by naming them).
BROWSER_MODULES = ("test_console.py",)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    browser = [item for item in items if item.path.name in BROWSER_MODULES]
    if browser and len(browser) < len(items):
        config.hook.pytest_deselected(items=browser)
        items[:] = [item for item in items if item.path.name not in BROWSER_MODULES]
