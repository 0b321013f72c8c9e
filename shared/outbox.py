"""Publishing what a committed transaction decided: at once, and again if it was lost.

A ``Relay`` runs on an aiohttp service's event loop. ``submit`` publishes a message whose
work has just been committed (many confirms in flight at once); a sweep republishes
what was left behind (the broker was down, the process was killed) once the broker is
reachable. Consumers are idempotent, so a message published twice does no harm.

Both HTTP services keep their messages in the ``outbox`` table, in the transaction of the
work, and delete a row once every message in it is confirmed. A row holds one message, or
the messages of a whole transaction (intake's group commit writes one row per batch of
leads, not one per lead): a row left behind exists only until its messages went out, so
the sweep never republishes what is merely waiting in a busy queue.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from concurrent.futures import Executor
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol, TypeVar

import orjson
from prometheus_client.core import GaugeMetricFamily
from sqlalchemy import delete, func, insert, select
from sqlalchemy.orm import Session

from shared.db.engine import SessionFactory, transaction, utcnow
from shared.db.models import OutboxMessage
from shared.messaging import AsyncBrokerClient, Envelope, Message, NotConnected

logger = logging.getLogger(__name__)
T = TypeVar("T")
#: Rows taken by one sweep.
SWEEP_LIMIT = 1000


#: The ``queue`` of an outbox row holding several messages (its body: a JSON list of
#: ``[queue, body]`` pairs).
BATCH = "(batch)"


@dataclass(frozen=True, slots=True)
class Outgoing:
    key: Any  # the outbox row's id
    messages: tuple[tuple[str, bytes], ...]  # (queue, body)

    @classmethod
    def one(cls, key: Any, queue: str, body: bytes) -> Outgoing:
        return cls(key, ((queue, body),))


def batch_row(messages: list[Message], now: datetime) -> dict[str, Any]:
    """An outbox row holding ``messages`` (the transaction's), to insert with the work."""
    envelopes = [Envelope.of(m) for m in messages]
    body = orjson.dumps([[e.route, e.encode().decode()] for e in envelopes]).decode()
    return {"queue": BATCH, "body": body, "created_at": now}


def store(session: Session, message: Message, now: datetime) -> Outgoing:
    """One message's outbox row, in the caller's transaction: to publish once committed
    (by the caller's relay, or by a running service's sweep)."""
    envelope = Envelope.of(message)
    body = envelope.encode()
    outbox_id = session.execute(
        insert(OutboxMessage)
        .values(queue=envelope.route, body=body.decode(), created_at=now)
        .returning(OutboxMessage.id)
    ).scalar_one()
    return Outgoing.one(outbox_id, envelope.route, body)


def outgoing_of(key: Any, queue: str, body: str) -> Outgoing:
    """What an outbox row publishes."""
    if queue != BATCH:
        return Outgoing.one(key, queue, body.encode())
    return Outgoing(key, tuple((q, b.encode()) for q, b in orjson.loads(body)))


class Pending(Protocol):
    """Where a service's committed-but-unpublished messages are."""

    def older_than(self, seconds: float) -> list[Outgoing]: ...

    def confirmed(self, keys: list[Any]) -> None: ...

    def depth(self) -> int: ...


class OutboxTable:
    """Rows of the ``outbox`` table, written in the transaction of the work."""

    def __init__(self, factory: SessionFactory) -> None:
        self._factory = factory

    def older_than(self, seconds: float) -> list[Outgoing]:
        cutoff = utcnow() - timedelta(seconds=seconds)
        with self._factory() as session:
            result = session.execute(
                select(OutboxMessage.id, OutboxMessage.queue, OutboxMessage.body)
                .where(OutboxMessage.created_at <= cutoff)
                .order_by(OutboxMessage.id)
                .limit(SWEEP_LIMIT)
            )
            return [outgoing_of(r.id, r.queue, r.body) for r in result]

    def confirmed(self, keys: list[Any]) -> None:
        with transaction(self._factory) as session:
            session.execute(delete(OutboxMessage).where(OutboxMessage.id.in_(keys)))

    def depth(self) -> int:
        with self._factory() as session:
            return session.scalar(select(func.count()).select_from(OutboxMessage)) or 0


class Relay:
    def __init__(
        self,
        client: AsyncBrokerClient,
        pending: Pending,
        executor: Executor,
        *,
        sweep_seconds: float = 5.0,
        housekeeping: Callable[[], object] | None = None,
    ) -> None:
        """``housekeeping`` runs on a database thread at every sweep (pruning)."""
        self._client = client
        self._pending = pending
        self._executor = executor
        self._sweep_seconds = sweep_seconds
        self._housekeeping = housekeeping
        self._in_flight: set[Any] = set()
        self._confirmed: list[Any] = []
        self._confirmed_since = 0.0  # when the oldest key in ``_confirmed`` came
        self._report_after = 0.0
        self._wake = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()

    async def _db(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    def defer_reports(self, seconds: float) -> None:
        """For a service that commits all the time anyway (intake): it deletes the
        confirmed rows in its own next transaction (``take_confirmed``), and the relay
        deletes them itself only once they waited ``seconds`` (the service is idle)."""
        self._report_after = seconds

    def take_confirmed(self) -> list[Any]:
        """The keys confirmed and not yet deleted, now the caller's to delete (or to
        ``give_back`` if its transaction failed)."""
        keys, self._confirmed = self._confirmed, []
        return keys

    def give_back(self, keys: list[Any]) -> None:
        if keys:
            self._confirmed_since = asyncio.get_running_loop().time()
            self._confirmed.extend(keys)

    def submit(self, outgoing: Outgoing) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(self._publish(outgoing))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _publish(self, outgoing: Outgoing) -> None:
        if outgoing.key in self._in_flight:
            return
        self._in_flight.add(outgoing.key)
        try:
            await asyncio.gather(
                *(self._client.publish(queue, body) for queue, body in outgoing.messages)
            )
        except NotConnected as exc:
            logger.debug("%s waits for the broker: %s", outgoing.key, exc)
            return
        finally:
            self._in_flight.discard(outgoing.key)
        if not self._confirmed:
            self._confirmed_since = asyncio.get_running_loop().time()
        self._confirmed.append(outgoing.key)
        if not self._report_after:
            self._wake.set()

    async def run(self) -> None:
        """Tell the source what was confirmed, in batches, and sweep now and then; runs
        until cancelled."""
        loop = asyncio.get_running_loop()
        next_sweep = loop.time() + self._sweep_seconds
        while True:
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=0.5)
            except TimeoutError:
                pass
            self._wake.clear()
            try:
                if loop.time() - self._confirmed_since >= self._report_after:
                    await self._report_confirmed()
                if loop.time() >= next_sweep:
                    next_sweep = loop.time() + self._sweep_seconds
                    await self.sweep()
                    if self._housekeeping is not None:
                        await self._db(self._housekeeping)
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("outbox relay pass failed; trying again")
                await asyncio.sleep(1.0)

    async def flush(self) -> None:
        """Finish in-flight publishes and report what was confirmed (at shutdown)."""
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=5)
        try:
            await self._report_confirmed()
        except Exception as exc:
            logger.warning("confirmed messages not recorded (%s); the sweep sends them again", exc)

    async def _report_confirmed(self) -> None:
        if not self._confirmed:
            return
        keys, self._confirmed = self._confirmed, []
        try:
            await self._db(self._pending.confirmed, keys)
        except Exception:
            self._confirmed.extend(keys)
            raise

    async def sweep(self, *, older_than: float | None = None) -> int:
        """Publish again what is older than the sweep interval and not in flight."""
        if not self._client.connected:
            return 0
        age = self._sweep_seconds if older_than is None else older_than
        rows = [
            r
            for r in await self._db(self._pending.older_than, age)
            if r.key not in self._in_flight and r.key not in self._confirmed
        ]
        if rows:
            logger.info("outbox sweep publishing %d messages", len(rows))
            await asyncio.gather(*(self._publish(row) for row in rows))
        return len(rows)


class OutboxDepthCollector:
    """``leadflow_outbox_depth{service}``: committed messages not yet taken up."""

    def __init__(self, pending: Pending, service: str) -> None:
        self._pending = pending
        self._service = service

    def collect(self) -> Iterable[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "leadflow_outbox_depth", "Outbox rows waiting to be published", labels=["service"]
        )
        try:
            family.add_metric([self._service], self._pending.depth())
        except Exception as exc:
            logger.warning("outbox depth unavailable: %s", exc)
        yield family
