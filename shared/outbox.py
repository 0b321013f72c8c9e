"""Rows written in the same transaction as the work, published after the commit.

``OutboxRelay`` runs on an aiohttp service's event loop: ``submit`` publishes a freshly
committed row at once; confirmed rows are deleted in batches; a sweep republishes rows
left behind (broker down, process killed) once the broker is reachable. Consumers are
idempotent, so a row published twice does no harm.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from concurrent.futures import Executor
from datetime import timedelta
from typing import Any, TypeVar

from prometheus_client.core import GaugeMetricFamily
from sqlalchemy import delete, func, select

from shared.db.engine import SessionFactory, transaction, utcnow
from shared.db.models import OutboxMessage
from shared.messaging import AsyncBrokerClient, NotConnected

logger = logging.getLogger(__name__)
T = TypeVar("T")


class OutboxRelay:
    def __init__(
        self,
        client: AsyncBrokerClient,
        factory: SessionFactory,
        executor: Executor,
        *,
        sweep_seconds: float = 5.0,
    ) -> None:
        self._client = client
        self._factory = factory
        self._executor = executor
        self._sweep_seconds = sweep_seconds
        self._in_flight: set[int] = set()
        self._held: set[int] = set()  # rows of a commit in doubt: not to be swept
        self._confirmed: list[int] = []
        self._wake = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()

    async def _db(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    def hold(self, row_ids: Iterable[int]) -> None:
        """Keep the sweep off these rows (their commit is in doubt) until ``release``."""
        self._held.update(row_ids)

    def release(self, row_ids: Iterable[int]) -> None:
        self._held.difference_update(row_ids)

    def submit(self, row_id: int, queue: str, body: str) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(self._publish(row_id, queue, body))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _publish(self, row_id: int, queue: str, body: str) -> None:
        if row_id in self._in_flight:
            return
        self._in_flight.add(row_id)
        try:
            await self._client.publish(queue, body.encode())
        except NotConnected as exc:
            logger.debug("outbox row %s waits for the broker: %s", row_id, exc)
            return
        finally:
            self._in_flight.discard(row_id)
        self._confirmed.append(row_id)
        self._wake.set()

    async def run(self) -> None:
        """Delete confirmed rows in batches and sweep rows left behind; runs until cancelled."""
        loop = asyncio.get_running_loop()
        next_sweep = loop.time() + self._sweep_seconds
        while True:
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=0.5)
            except TimeoutError:
                pass
            self._wake.clear()
            try:
                await self._delete_confirmed()
                if loop.time() >= next_sweep:
                    next_sweep = loop.time() + self._sweep_seconds
                    await self.sweep()
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("outbox relay pass failed; trying again")
                await asyncio.sleep(1.0)

    async def flush(self) -> None:
        """Finish in-flight publishes and delete what was confirmed (at shutdown)."""
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=5)
        await self._delete_confirmed()

    async def _delete_confirmed(self) -> None:
        if not self._confirmed:
            return
        ids, self._confirmed = self._confirmed, []
        try:
            await self._db(self._delete_rows, ids)
        except Exception:
            self._confirmed.extend(ids)
            raise

    def _delete_rows(self, ids: list[int]) -> None:
        with transaction(self._factory) as session:
            session.execute(delete(OutboxMessage).where(OutboxMessage.id.in_(ids)))

    async def sweep(self, *, older_than: float | None = None) -> int:
        """Republish rows older than the sweep interval that no one has published."""
        if not self._client.connected:
            return 0
        age = self._sweep_seconds if older_than is None else older_than
        rows = await self._db(self._old_rows, age)
        rows = [r for r in rows if r[0] not in self._in_flight and r[0] not in self._held]
        if rows:
            logger.info("outbox sweep republishing %d messages", len(rows))
            await asyncio.gather(*(self._publish(*row) for row in rows))
        return len(rows)

    def _old_rows(self, age: float) -> list[tuple[int, str, str]]:
        cutoff = utcnow() - timedelta(seconds=age)
        with self._factory() as session:
            result = session.execute(
                select(OutboxMessage.id, OutboxMessage.queue, OutboxMessage.body)
                .where(OutboxMessage.created_at <= cutoff)
                .order_by(OutboxMessage.id)
                .limit(1000)
            )
            return [(r.id, r.queue, r.body) for r in result]


class OutboxDepthCollector:
    """``leadflow_outbox_depth{service}``: rows committed but not yet confirmed by RabbitMQ."""

    def __init__(self, factory: SessionFactory, service: str) -> None:
        self._factory = factory
        self._service = service

    def collect(self) -> Iterable[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "leadflow_outbox_depth", "Outbox rows waiting to be published", labels=["service"]
        )
        try:
            with self._factory() as session:
                depth = session.scalar(select(func.count()).select_from(OutboxMessage)) or 0
            family.add_metric([self._service], depth)
        except Exception as exc:
            logger.warning("outbox depth unavailable: %s", exc)
        yield family
