"""Typed application state of the intake beyond what every service has (shared.web)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from services.intake.store import LeadWriter
from shared.flowconfig import LeadflowConfig

Latest = tuple[int, LeadflowConfig]


class LatestConfig:
    """The newest config version for requests. When the store's cache is stale, one
    database read serves every request that arrives meanwhile (not one read each)."""

    def __init__(self, cached: Callable[[], Latest | None], read: Callable[[], Awaitable[Latest]]):
        self._cached = cached
        self._read = read
        self._pending: asyncio.Future[Latest] | None = None

    async def get(self) -> Latest:
        current = self._cached()
        if current is not None:
            return current
        if self._pending is None:
            self._pending = asyncio.ensure_future(self._read())
            self._pending.add_done_callback(self._done)
        # A request that gives up must not cancel the read the others wait for.
        return await asyncio.shield(self._pending)

    def _done(self, future: asyncio.Future[Latest]) -> None:
        self._pending = None
        if not future.cancelled():
            with contextlib.suppress(Exception):
                future.exception()  # retrieved: every waiter may have gone


WRITER = web.AppKey("writer", LeadWriter)
WAITERS = web.AppKey("waiters", dict[str, "asyncio.Future[dict[str, Any]]"])
LATEST_CONFIG = web.AppKey("latest_config", LatestConfig)
