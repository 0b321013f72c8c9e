"""Typed application state and the helpers views share."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from aiohttp import web

from services.intake.store import LeadWriter
from shared.config import Settings
from shared.configstore import ConfigStore
from shared.db.engine import SessionFactory
from shared.messaging import AsyncBrokerClient
from shared.outbox import OutboxRelay

T = TypeVar("T")

SETTINGS = web.AppKey("settings", Settings)
FACTORY = web.AppKey("factory", SessionFactory)
EXECUTOR = web.AppKey("executor", ThreadPoolExecutor)
CONFIG = web.AppKey("config", ConfigStore)
CLIENT = web.AppKey("client", AsyncBrokerClient)
RELAY = web.AppKey("relay", OutboxRelay)
WRITER = web.AppKey("writer", LeadWriter)
WAITERS = web.AppKey("waiters", dict[str, "asyncio.Future[dict[str, Any]]"])


async def run_db(app: web.Application, fn: Callable[..., T], *args: Any) -> T:
    return await asyncio.get_running_loop().run_in_executor(app[EXECUTOR], fn, *args)
