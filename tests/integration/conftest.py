"""Shared fixtures of the integration tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.infra import rabbit_vhost


@pytest.fixture(params=["classic", "quorum"])
def queues(request: pytest.FixtureRequest) -> Iterator[tuple[str, str]]:
    """A vhost of its own (no other worker of the test run consumes there), per queue type."""
    with rabbit_vhost() as url:
        yield url, request.param
