"""Database outages: which errors mean the database is unreachable, and recording what
already happened elsewhere (an email the server took, a recipient's answer) patiently.

Such a record must not be lost to a short outage: if it were, the message would go back
through the retry tiers and the email or request would be sent again. So the record is
tried again in place, for up to ``RECORD_PATIENCE_SECONDS``, before the failure is left
to the retry tiers.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from sqlalchemy import exc as sa_exc

T = TypeVar("T")
logger = logging.getLogger(__name__)

#: The database is unreachable (or its pool is exhausted): wait for it, do not park.
DATABASE_OUTAGES: tuple[type[BaseException], ...] = (
    sa_exc.OperationalError,
    sa_exc.InterfaceError,
    sa_exc.DisconnectionError,
    sa_exc.TimeoutError,
)
RECORD_PATIENCE_SECONDS = 60.0
_FIRST_DELAY, _MAX_DELAY = 0.25, 5.0


def _delays(patience: float) -> list[float]:
    delays, delay, total = [], _FIRST_DELAY, 0.0
    while total + delay <= patience:
        delays.append(delay)
        total += delay
        delay = min(delay * 2, _MAX_DELAY)
    return delays


def _note(exc: BaseException, delay: float, ids: dict[str, str] | None) -> None:
    first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    logger.warning(
        "database unavailable while recording (%s); trying again in %.2g s",
        first,
        delay,
        extra=ids or {},
    )


def record_patiently(
    record: Callable[[], T],
    *,
    ids: dict[str, str] | None = None,
    patience: float = RECORD_PATIENCE_SECONDS,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """``record()``, tried again while the database is unreachable, up to ``patience``."""
    for delay in _delays(patience):
        try:
            return record()
        except DATABASE_OUTAGES as exc:
            _note(exc, delay, ids)
            sleep(delay)
    return record()


async def record_patiently_async(
    record: Callable[[], Awaitable[T]],
    *,
    ids: dict[str, str] | None = None,
    patience: float = RECORD_PATIENCE_SECONDS,
) -> T:
    """The same for an asyncio worker: ``await record()``, again while the database is out."""
    for delay in _delays(patience):
        try:
            return await record()
        except DATABASE_OUTAGES as exc:
            _note(exc, delay, ids)
            await asyncio.sleep(delay)
    return await record()
