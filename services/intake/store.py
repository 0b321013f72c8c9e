"""Group commit: leads arriving together are written in one transaction.

Each request hands its rows to ``LeadWriter.write`` and waits; a single writer task
takes everything queued, inserts it in one transaction on the database thread and
answers every waiter. Under load many leads share one commit; alone, a lead waits
for nothing but its own commit. A failed transaction fails every lead in it and
stores none of them.
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import Executor

from services.intake.leads import NewLead
from shared.db.engine import SessionFactory, transaction

logger = logging.getLogger(__name__)

MAX_BATCH = 500


class LeadWriter:
    def __init__(self, factory: SessionFactory, executor: Executor) -> None:
        self._factory = factory
        self._executor = executor
        self._queue: asyncio.Queue[tuple[NewLead, asyncio.Future[None]]] = asyncio.Queue()

    async def write(self, item: NewLead) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        await self._queue.put((item, future))
        await future

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = [await self._queue.get()]
            while len(batch) < MAX_BATCH and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            try:
                await loop.run_in_executor(self._executor, self._insert, [i for i, _ in batch])
            except Exception as exc:
                logger.warning("storing %d leads failed: %s", len(batch), exc)
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            for _, future in batch:
                if not future.done():
                    future.set_result(None)

    def _insert(self, items: list[NewLead]) -> None:
        with transaction(self._factory) as session:
            session.add_all([i.lead for i in items])
            session.flush()
            session.add_all([i.source_event for i in items])
            session.add_all([i.outbox for i in items if i.outbox is not None])
