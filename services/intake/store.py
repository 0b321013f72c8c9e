"""Group commit: leads arriving together are written in one transaction.

Each request hands its rows to ``LeadWriter.write`` and waits; a single writer task
takes everything queued, inserts it in one transaction on the database thread and
answers every waiter. Under load many leads share one commit; alone, a lead waits
for nothing but its own commit. A failed transaction fails every lead in it and
stores none of them.

The rows go in as one Core ``INSERT`` per table per batch (an executemany): the rows
are new and complete, so the ORM's unit of work would only add cost. Leads go first,
then their events (foreign key), then the outbox rows, whose ids come back in order.

A commit whose answer is lost (the connection drops after ``COMMIT`` was sent) may or
may not have happened (``shared.db.doubt``). The batch's waiters then wait while the
writer finds out, as soon as the database answers again (for up to
``RECORD_PATIENCE_SECONDS``): stored, they are told so; not stored, they get the outage
(503) and the source sends again. If it is still unknown then, the source is told 503
and the batch is undone once the outcome is known (if it was stored and the router has
not taken it), so a lead the source was refused is not delivered beside the one it sends
again. Meanwhile the batch's outbox rows are held back from this process's relay sweep.
(Another intake process's sweep may still publish one first: the undo then keeps a lead
the router took, or the router parks the start of a lead that was undone.)
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from concurrent.futures import Executor
from typing import Any, TypeVar

from sqlalchemy import delete, func, insert, select
from sqlalchemy.orm import Session

from services.intake.leads import NewLead
from shared.db.doubt import CommitProbe
from shared.db.engine import SessionFactory, transaction
from shared.db.models import Base
from shared.db.outages import DATABASE_OUTAGES, RECORD_PATIENCE_SECONDS, Patience
from shared.outbox import OutboxRelay

logger = logging.getLogger(__name__)
T = TypeVar("T")

MAX_BATCH = 500
#: Between tries to undo a batch whose commit stayed in doubt (short: the outbox sweeps
#: of other intake processes race it once the database is back).
UNDO_DELAY_SECONDS = 0.5

_LEADS = Base.metadata.tables["leads"]
_EVENTS = Base.metadata.tables["events"]
_OUTBOX = Base.metadata.tables["outbox"]
_INSERT_LEADS = insert(_LEADS)
_INSERT_EVENTS = insert(_EVENTS)
_INSERT_OUTBOX = insert(_OUTBOX).returning(_OUTBOX.c.id, sort_by_parameter_order=True)


class InDoubt(Exception):
    """The commit of a batch failed on a lost connection: it may have happened."""

    def __init__(
        self,
        items: list[NewLead],
        outbox_ids: list[int | None],
        probe: CommitProbe,
        cause: BaseException,
    ) -> None:
        super().__init__(f"commit of {len(items)} leads in doubt: {cause}")
        self.lead_ids = [i.lead_id for i in items]
        self.outbox_ids = outbox_ids
        # each lead's outbox row (id, body): undone only if it is still that row
        self.outbox_rows = {
            item.lead_id: (outbox_id, item.outbox_row["body"])
            for item, outbox_id in zip(items, outbox_ids, strict=True)
            if outbox_id is not None and item.outbox_row is not None
        }
        self.probe = probe
        self.cause = cause


class LeadWriter:
    def __init__(
        self,
        factory: SessionFactory,
        executor: Executor,
        *,
        relay: OutboxRelay | None = None,
        patience: float = RECORD_PATIENCE_SECONDS,
    ) -> None:
        self._factory = factory
        self._executor = executor
        self._relay = relay
        self._patience = patience
        self._queue: asyncio.Queue[tuple[NewLead, asyncio.Future[int | None]]] = asyncio.Queue()
        self._tasks: set[asyncio.Task[None]] = set()
        self._in_doubt: list[InDoubt] = []

    async def write(self, item: NewLead) -> int | None:
        """Store the lead's rows; returns the id of its outbox row (None without one)."""
        future: asyncio.Future[int | None] = asyncio.get_running_loop().create_future()
        await self._queue.put((item, future))
        return await future

    async def run(self) -> None:
        """Write batches until cancelled; then say which doubtful batches stay unresolved."""
        try:
            await self._write_batches()
        finally:
            tasks = list(self._tasks)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            for doubt in self._in_doubt:
                logger.error(
                    "stopping with %d leads whose commit is in doubt: %s",
                    len(doubt.lead_ids),
                    ", ".join(doubt.lead_ids),
                )

    async def _write_batches(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while len(batch) < MAX_BATCH and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            futures = [f for _, f in batch]
            try:
                outbox_ids = await self._db(self._insert, [i for i, _ in batch])
            except InDoubt as doubt:
                logger.warning(
                    "the commit of %d leads is in doubt (%s); finding out",
                    len(batch),
                    _first_line(doubt.cause),
                )
                self._hold(doubt)
                self._spawn(self._settle(futures, doubt))
                continue
            except Exception as exc:
                logger.warning("storing %d leads failed: %s", len(batch), exc)
                _fail(futures, exc)
                continue
            _answer(futures, outbox_ids)

    async def _db(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _hold(self, doubt: InDoubt) -> None:
        self._in_doubt.append(doubt)
        if self._relay is not None:
            self._relay.hold(row_id for row_id, _ in doubt.outbox_rows.values())

    def _settled(self, doubt: InDoubt) -> None:
        self._in_doubt.remove(doubt)
        if self._relay is not None:
            self._relay.release(row_id for row_id, _ in doubt.outbox_rows.values())

    def _insert(self, items: list[NewLead]) -> list[int | None]:
        """Insert the batch in one transaction; each item's outbox row id, in order.
        Raises ``InDoubt`` when the commit fails on a lost connection."""
        outbox_rows = [i.outbox_row for i in items if i.outbox_row is not None]
        with self._factory() as session:
            session.begin()
            try:
                connection = session.connection(execution_options={"sqlite_immediate": True})
                connection.execute(_INSERT_LEADS, [i.lead_row for i in items])
                connection.execute(_INSERT_EVENTS, [i.event_row for i in items])
                ids = (
                    list(connection.execute(_INSERT_OUTBOX, outbox_rows).scalars())
                    if outbox_rows
                    else []
                )
                if len(ids) != len(outbox_rows):
                    raise RuntimeError(
                        f"inserted {len(outbox_rows)} outbox rows, got {len(ids)} ids"
                    )
                probe = CommitProbe.take(session)
            except BaseException:
                session.rollback()
                raise
            found = iter(ids)
            outbox_ids = [next(found) if i.outbox_row is not None else None for i in items]
            try:
                session.commit()
            except DATABASE_OUTAGES as exc:
                raise InDoubt(items, outbox_ids, probe, exc) from exc
        return outbox_ids

    def _outcome(self, doubt: InDoubt) -> bool | None:
        """Whether the doubtful commit happened (None: not known yet); raises outages."""
        first = doubt.lead_ids[0]

        def stored(session: Session) -> bool:
            return bool(session.scalar(select(func.count()).where(_LEADS.c.id == first)))

        with self._factory() as session:
            return doubt.probe.outcome(session, stored)

    async def _settle(self, futures: list[asyncio.Future[int | None]], doubt: InDoubt) -> None:
        """Find out whether the doubtful commit happened and answer its waiters."""
        try:
            known = await self._find_out(doubt)
        except asyncio.CancelledError:
            _fail(futures, doubt.cause)  # (stopping: ``run`` logs the doubt)
            raise
        if known is None:
            logger.warning(
                "the commit of %d leads stays in doubt; the source is told 503 and the "
                "leads will be undone if they were stored",
                len(futures),
                extra={"lead_id": doubt.lead_ids[0]},
            )
            _fail(futures, doubt.cause)
            await self._undo(doubt)
            return
        self._settled(doubt)
        if known:
            logger.info("the doubtful commit of %d leads had happened", len(futures))
            _answer(futures, doubt.outbox_ids)
        else:
            logger.info("the doubtful commit of %d leads had not happened", len(futures))
            _fail(futures, doubt.cause)

    async def _find_out(self, doubt: InDoubt) -> bool | None:
        """Whether the doubtful commit happened, asked until known or out of patience."""
        waits = Patience(self._patience)
        while True:
            try:
                known = await self._db(self._outcome, doubt)
            except DATABASE_OUTAGES:
                known = None
            except Exception:
                logger.exception("finding out a doubtful commit failed; trying again")
                known = None
            if known is not None:
                return known
            wait = waits.next_wait()
            if wait is None:
                return None
            await asyncio.sleep(wait)

    async def _undo(self, doubt: InDoubt) -> None:
        """Once the outcome is known: remove the batch's leads (if stored) that the router
        has not taken yet."""
        while True:
            try:
                removed, kept = await self._db(self._remove, doubt)
                break
            except _NotKnownYet:
                pass
            except DATABASE_OUTAGES as exc:
                logger.debug("undoing a doubtful batch waits for the database: %s", exc)
            except Exception:
                logger.exception("undoing a doubtful batch failed; trying again")
            await asyncio.sleep(UNDO_DELAY_SECONDS)
        self._settled(doubt)
        for lead_id in removed:
            logger.info(
                "lead removed: its commit was in doubt and the source was told 503",
                extra={"lead_id": lead_id},
            )
        for lead_id in kept:
            logger.error(
                "lead kept though the source was told 503: the router had already taken it",
                extra={"lead_id": lead_id},
            )

    def _remove(self, doubt: InDoubt) -> tuple[list[str], list[str]]:
        """Delete the stored leads of ``doubt`` still as intake left them; (removed, kept)."""
        happened = self._outcome(doubt)
        if happened is None:
            raise _NotKnownYet
        if not happened:
            return [], []
        with transaction(self._factory) as session:
            connection = session.connection()
            stored = connection.execute(
                select(_LEADS.c.id, _LEADS.c.state, _LEADS.c.step_index)
                .where(_LEADS.c.id.in_(doubt.lead_ids))
                .with_for_update()
            ).all()
            routed = set(
                connection.execute(
                    select(_EVENTS.c.lead_id)
                    .where(_EVENTS.c.lead_id.in_(doubt.lead_ids), _EVENTS.c.type != "source")
                    .distinct()
                ).scalars()
            )
            removed = [
                row.id
                for row in stored
                if row.id not in routed
                and (
                    row.id not in doubt.outbox_rows
                    or (row.state == "routing" and row.step_index == 0)
                )
            ]
            kept = [row.id for row in stored if row.id not in removed]
            if removed:
                for lead_id in removed:
                    if lead_id in doubt.outbox_rows:
                        outbox_id, body = doubt.outbox_rows[lead_id]
                        connection.execute(
                            delete(_OUTBOX).where(_OUTBOX.c.id == outbox_id, _OUTBOX.c.body == body)
                        )
                connection.execute(delete(_EVENTS).where(_EVENTS.c.lead_id.in_(removed)))
                connection.execute(delete(_LEADS).where(_LEADS.c.id.in_(removed)))
            return removed, kept


class _NotKnownYet(Exception):
    """The doubtful transaction is still open on its old connection."""


def _answer(futures: list[asyncio.Future[int | None]], outbox_ids: list[int | None]) -> None:
    for future, outbox_id in zip(futures, outbox_ids, strict=True):
        if not future.done():
            future.set_result(outbox_id)


def _fail(futures: list[asyncio.Future[int | None]], exc: BaseException) -> None:
    for future in futures:
        if not future.done():
            future.set_exception(exc)


def _first_line(exc: BaseException) -> str:
    text = str(exc)
    return text.splitlines()[0] if text else type(exc).__name__
