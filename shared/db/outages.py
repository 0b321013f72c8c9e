"""Database outages: which errors mean the database is unreachable, and recording what
already happened elsewhere (an email the server took, a recipient's answer) patiently.

Such a record must not be lost to a short outage: if it were, the message would go back
through the retry tiers and the email or request would be sent again. So the record is
tried again in place, for up to the settings' ``record_patience`` of real time (derived
from the shutdown grace), before the failure is left to the retry tiers.
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
_FIRST_DELAY, _MAX_DELAY = 0.25, 4.0


class Patience:
    """The waits between tries, until ``patience`` seconds (real time) have passed."""

    def __init__(self, patience: float) -> None:
        self._deadline = time.monotonic() + patience
        self._delay = _FIRST_DELAY

    def next_wait(self) -> float | None:
        wait = self._delay
        if time.monotonic() + wait > self._deadline:
            return None
        self._delay = min(self._delay * 2, _MAX_DELAY)
        return wait


def _note(exc: BaseException, wait: float, ids: dict[str, str] | None) -> None:
    first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    logger.warning(
        "database unavailable (%s); trying again in %.2g s",
        first,
        wait,
        extra=ids or {},
    )


def record_patiently(
    record: Callable[[], T],
    *,
    ids: dict[str, str] | None = None,
    patience: float,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """``record()``, tried again while the database is unreachable, for up to ``patience``
    seconds; then the outage is raised (and left to the retry tiers)."""
    waits = Patience(patience)
    while True:
        try:
            return record()
        except DATABASE_OUTAGES as exc:
            wait = waits.next_wait()
            if wait is None:
                raise
            _note(exc, wait, ids)
            sleep(wait)


async def record_patiently_async(
    record: Callable[[], Awaitable[T]],
    *,
    ids: dict[str, str] | None = None,
    patience: float,
) -> T:
    """The same for an asyncio worker: ``await record()``, again while the database is out."""
    waits = Patience(patience)
    while True:
        try:
            return await record()
        except DATABASE_OUTAGES as exc:
            wait = waits.next_wait()
            if wait is None:
                raise
            _note(exc, wait, ids)
            await asyncio.sleep(wait)
