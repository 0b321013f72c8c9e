"""Typed application state of the intake beyond what every service has (shared.web)."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from services.intake.store import LeadWriter

WRITER = web.AppKey("writer", LeadWriter)
WAITERS = web.AppKey("waiters", dict[str, "asyncio.Future[dict[str, Any]]"])
