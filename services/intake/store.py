"""Group commit: leads arriving together are written in one transaction.

Each request hands its rows to ``LeadWriter.write`` and waits; a single writer task
takes everything queued, inserts it in one transaction on the database thread and
answers every waiter. Under load many leads share one commit; alone, a lead waits
for nothing but its own commit. A failed transaction fails every lead in it and
stores none of them.

The rows go in as one Core ``INSERT`` per table per batch (an executemany): the rows
are new and complete, so the ORM's unit of work would only add cost. Leads go first,
then their events (foreign key), then the outbox rows, whose ids come back in order.
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import Executor

from sqlalchemy import insert

from services.intake.leads import NewLead
from shared.db.engine import SessionFactory, transaction
from shared.db.models import Base

logger = logging.getLogger(__name__)

MAX_BATCH = 500

_LEADS = Base.metadata.tables["leads"]
_EVENTS = Base.metadata.tables["events"]
_OUTBOX = Base.metadata.tables["outbox"]
_INSERT_LEADS = insert(_LEADS)
_INSERT_EVENTS = insert(_EVENTS)
_INSERT_OUTBOX = insert(_OUTBOX).returning(_OUTBOX.c.id, sort_by_parameter_order=True)


class LeadWriter:
    def __init__(self, factory: SessionFactory, executor: Executor) -> None:
        self._factory = factory
        self._executor = executor
        self._queue: asyncio.Queue[tuple[NewLead, asyncio.Future[int | None]]] = asyncio.Queue()

    async def write(self, item: NewLead) -> int | None:
        """Store the lead's rows; returns the id of its outbox row (None without one)."""
        future: asyncio.Future[int | None] = asyncio.get_running_loop().create_future()
        await self._queue.put((item, future))
        return await future

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = [await self._queue.get()]
            while len(batch) < MAX_BATCH and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            try:
                outbox_ids = await loop.run_in_executor(
                    self._executor, self._insert, [i for i, _ in batch]
                )
            except Exception as exc:
                logger.warning("storing %d leads failed: %s", len(batch), exc)
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            for (_, future), outbox_id in zip(batch, outbox_ids, strict=True):
                if not future.done():
                    future.set_result(outbox_id)

    def _insert(self, items: list[NewLead]) -> list[int | None]:
        """Insert the batch in one transaction; each item's outbox row id, in order."""
        outbox_rows = [i.outbox_row for i in items if i.outbox_row is not None]
        with transaction(self._factory) as session:
            connection = session.connection()
            connection.execute(_INSERT_LEADS, [i.lead_row for i in items])
            connection.execute(_INSERT_EVENTS, [i.event_row for i in items])
            ids = (
                list(connection.execute(_INSERT_OUTBOX, outbox_rows).scalars())
                if outbox_rows
                else []
            )
            if len(ids) != len(outbox_rows):  # rolls the batch back
                raise RuntimeError(f"inserted {len(outbox_rows)} outbox rows, got {len(ids)} ids")
        found = iter(ids)
        return [next(found) if i.outbox_row is not None else None for i in items]
