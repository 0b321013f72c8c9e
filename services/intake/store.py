"""Group commit: leads arriving together are written in one transaction.

Each request hands its ``NewLead`` to ``LeadWriter.write`` and waits; a single writer task
takes everything queued, stores it in one transaction on a database thread and answers
every waiter. Under load many leads share one commit; alone, a lead waits for nothing
but its own commit.

The transaction first takes the batch's resubmission keys (``shared.resubmits``): a
submission whose key is live is answered with the earlier lead and stores nothing. The
rest go in as one Core ``INSERT`` per table (leads, then their source events). A failed
transaction fails every lead in it and stores none of them: the sources are told 503 and
send again. If the commit did happen and only its answer was lost, the copy they send is
a resubmission and gets the lead that was stored, so nothing is stored twice.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import insert

from services.intake.leads import NewLead
from shared import resubmits
from shared.db.engine import SessionFactory, transaction, utcnow
from shared.db.models import Base

logger = logging.getLogger(__name__)
T = TypeVar("T")

MAX_BATCH = 500

_INSERT_LEADS = insert(Base.metadata.tables["leads"])
_INSERT_EVENTS = insert(Base.metadata.tables["events"])


@dataclass(frozen=True, slots=True)
class Written:
    """What became of a submission: stored as its own lead, or a resubmission of
    ``lead_id``."""

    lead_id: str
    resubmission: bool = False


class LeadWriter:
    def __init__(self, factory: SessionFactory, executor: Executor) -> None:
        self._factory = factory
        self._executor = executor
        self._queue: asyncio.Queue[tuple[NewLead, asyncio.Future[Written]]] = asyncio.Queue()

    async def write(self, item: NewLead) -> Written:
        """Store the lead (or find the earlier one it repeats)."""
        future: asyncio.Future[Written] = asyncio.get_running_loop().create_future()
        await self._queue.put((item, future))
        return await future

    async def run(self) -> None:
        """Write batches until cancelled."""
        while True:
            batch = [await self._queue.get()]
            while len(batch) < MAX_BATCH and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            futures = [f for _, f in batch]
            try:
                written = await self._db(self._insert, [i for i, _ in batch])
            except Exception as exc:
                logger.warning("storing %d leads failed: %s", len(batch), _first_line(exc))
                for future in futures:
                    if not future.done():
                        future.set_exception(exc)
                continue
            for future, result in zip(futures, written, strict=True):
                if not future.done():
                    future.set_result(result)

    async def _db(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    def _insert(self, items: list[NewLead]) -> list[Written]:
        try:
            return self._insert_once(items)
        except resubmits.Raced:
            # Another intake stored one of these keys meanwhile: now it is read, not raced.
            return self._insert_once(items)

    def _insert_once(self, items: list[NewLead]) -> list[Written]:
        with transaction(self._factory) as session:
            connection = session.connection()
            earlier = resubmits.take(connection, [(i.lead_id, i.keys) for i in items], utcnow())
            new = [item for item, first in zip(items, earlier, strict=True) if first is None]
            if new:
                connection.execute(_INSERT_LEADS, [i.lead_row for i in new])
                connection.execute(_INSERT_EVENTS, [i.event_row for i in new])
        return [
            Written(item.lead_id) if first is None else Written(first, resubmission=True)
            for item, first in zip(items, earlier, strict=True)
        ]


def _first_line(exc: BaseException) -> str:
    text = str(exc)
    return text.splitlines()[0] if text else type(exc).__name__
