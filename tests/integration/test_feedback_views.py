"""The feedback view's unexpected failures: a 500 whose detail stays in the log (asked over
HTTP of a test server on 127.0.0.1)."""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Any, cast

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from services.feedback import records, views
from shared.configstore import ConfigStore
from shared.db.engine import SessionFactory
from shared.web import CONFIG, EXECUTOR, FACTORY, error_middleware


def app_with_failing_records(monkeypatch: pytest.MonkeyPatch) -> web.Application:
    def explode(*_args: Any) -> records.Receipt:
        raise RuntimeError("secret detail: disk on fire")

    monkeypatch.setattr(records, "record", explode)
    app = web.Application(middlewares=[error_middleware])
    app[EXECUTOR] = ThreadPoolExecutor(max_workers=1)
    # records.record is replaced above: the session factory and the configs are never used
    app[FACTORY] = cast(SessionFactory, None)
    app[CONFIG] = cast(ConfigStore, None)
    app.router.add_post("/feedback", views.post_feedback)
    return app


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        ("application/json", '{"outcome": "error", "reason": "Internal error"}'),
        ("text/plain", "outcome: error\nreason: Internal error\n"),
    ],
)
def test_an_unexpected_failure_answers_500_and_logs_the_detail_only(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, accept: str, expected: str
) -> None:
    # given a feedback view whose records fail unexpectedly
    app = app_with_failing_records(monkeypatch)

    async def post() -> tuple[int, str]:
        async with TestClient(TestServer(app)) as client:
            response = await client.post(
                "/feedback?event_id=abc",
                data=b'{"type": "conversion"}',
                headers={"Content-Type": "application/json", "Accept": accept},
            )
            return response.status, await response.text()

    # when a buyer posts feedback
    with caplog.at_level(logging.ERROR):
        status, text = asyncio.run(post())
    app[EXECUTOR].shutdown()

    # then the answer is a bare 500 error and the detail is in the log
    assert (status, text) == (500, expected)
    assert "disk on fire" in caplog.text
