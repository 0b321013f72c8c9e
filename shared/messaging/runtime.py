"""The one worker runtime: consuming work queues on one event loop.

Every worker process (router, http-delivery, email-delivery, the feedback forwarder)
declares its ``Consumer``s and runs a ``Worker``:

- each message becomes a task; a consumer's ``concurrency`` is its prefetch window, so
  it bounds how many of its messages are in hand at once. A coroutine handler runs on
  the loop; a plain function runs on a thread pool of that many threads (for blocking
  libraries such as smtplib);
- a handler that returns gets its message acked; one that raises follows the one
  failure policy (``shared.messaging.policy``): a copy with the next attempt number goes
  to the retry tier ``<queue>.retry.<ms>`` (confirmed) before the original is acked, and
  an exhausted message runs the consumer's ``on_exhausted``, is mirrored in the database
  and parked in ``<queue>.XQ`` with its whole history;
- a stop (SIGTERM or SIGINT) cancels the consumers, lets the messages in hand finish for
  up to the shutdown grace, then closes; anything not acked goes back to its queue.

Why one module of this size: decode, the in-hand duplicate guard, the handler call, the
failure policy's outcome (ack, retry tier, park) and the stop are the one path a
message takes; the policy's rules themselves live in ``policy``, the wire format in
``envelope``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import inspect
import logging
import os
import secrets
import socket
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from typing import Any, Protocol

from shared.errors import MessageDecodeError, PermanentError, TransientError
from shared.messaging.client import AsyncBrokerClient, Delivery, NotConnected
from shared.messaging.envelope import Envelope
from shared.messaging.messages import FlowReply, Message, decode_any
from shared.messaging.policy import (
    ParkedMessage,
    ids_of,
    note_parked,
    note_retry,
    outage_error,
    plan_failure,
)
from shared.messaging.topology import retry_queue_name, xq_name

logger = logging.getLogger(__name__)

Handler = Callable[[Message], Awaitable[None]] | Callable[[Message], None]
ExhaustedHandler = Callable[[Message, str], Awaitable[None]] | Callable[[Message, str], None]
DeadLetterRecorder = Callable[[ParkedMessage], Awaitable[None]]
EXPECTED = (TransientError, PermanentError, MessageDecodeError)
#: How long a thread's publish waits for the broker's confirm.
THREAD_PUBLISH_TIMEOUT_SECONDS = 30.0
#: This process, as a holder of claims (``shared.deliveries``).
PROCESS_ID = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"
_message_id: contextvars.ContextVar[str] = contextvars.ContextVar("message_id", default="-")


def holder() -> str:
    """Who handles the current message: this process and the message's id (kept by its
    retries). A handler claims work under it, so the same message coming back to this
    process after a failure takes its own claim again at once."""
    return f"{PROCESS_ID}:{_message_id.get()}"


class Publisher(Protocol):
    """What code on a thread publishes through (``ThreadPublisher``, the CLI's
    ``BlockingPublisher``)."""

    def publish(self, message: Message) -> None: ...


class AsyncPublisher(Protocol):
    """What a coroutine handler publishes through (the ``Worker``)."""

    async def publish(self, message: Message) -> None: ...

    def reply(self, reply_to: str, reply: FlowReply) -> None: ...


class WorkerModule(Protocol):
    """A worker module: its queue, its handler and what it does with a message whose
    retries are used up, both taking the worker's ``deps``."""

    QUEUE: str
    handle: Callable[..., Any]
    on_exhausted: Callable[..., Any]


@dataclass(frozen=True, slots=True)
class Consumer:
    """The handler of one work queue, how many of its messages may be in hand at once,
    and what to do when a message's retries are used up."""

    queue: str
    handler: Handler
    on_exhausted: ExhaustedHandler | None = None
    concurrency: int = 16

    @classmethod
    def of(cls, worker: WorkerModule, deps: Any, concurrency: int) -> Consumer:
        """A worker module's queue, ``handle`` and ``on_exhausted``, each given ``deps``."""
        bound = partial(worker.handle, deps=deps), partial(worker.on_exhausted, deps=deps)
        return cls(worker.QUEUE, *bound, concurrency=concurrency)

    @property
    def blocking(self) -> bool:
        return not inspect.iscoroutinefunction(_unwrap(self.handler))


def _unwrap(fn: Any) -> Any:
    while hasattr(fn, "func"):  # functools.partial
        fn = fn.func
    return fn


class Worker:
    """Consumers are added with ``consume`` before ``run``; handlers publish follow-ups
    with ``publish`` (confirmed, many in flight on the one connection), or from a
    thread through ``thread_publisher``."""

    def __init__(
        self,
        url: str,
        *,
        queue_type: str = "classic",
        record_dead_letter: DeadLetterRecorder | None = None,
        outage_errors: tuple[type[BaseException], ...] = (),
        name: str = "worker",
    ) -> None:
        self._url = url
        self._consumers: dict[str, Consumer] = {}
        self._pools: dict[str, ThreadPoolExecutor] = {}
        self._queue_type = queue_type
        self._record_dead_letter = record_dead_letter
        self._outage_errors = outage_errors
        self._name = name
        self._tasks: set[asyncio.Task[None]] = set()
        self._in_hand: dict[str, asyncio.Task[None]] = {}  # message id -> its task
        self._client: AsyncBrokerClient | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def consume(self, consumer: Consumer) -> None:
        if self._client is not None:
            raise RuntimeError("consumers are added before the worker runs")
        self._consumers[consumer.queue] = consumer
        if consumer.blocking:
            self._pools[consumer.queue] = ThreadPoolExecutor(
                consumer.concurrency, thread_name_prefix=consumer.queue
            )

    @property
    def client(self) -> AsyncBrokerClient:
        if self._client is None:
            self._client = AsyncBrokerClient(
                self._url,
                consume={c.queue: c.concurrency for c in self._consumers.values()},
                on_delivery=self._on_delivery,
                reply_queue=False,
                queue_type=self._queue_type,
            )
        return self._client

    async def publish(self, message: Message) -> None:
        """Publish a follow-up message and wait for the broker's confirm."""
        envelope = Envelope.of(message)
        await self.client.publish(envelope.route, envelope.encode())

    def reply(self, reply_to: str, reply: FlowReply) -> None:
        """Answer an intake process waiting on a lead (best effort)."""
        if not self.client.send_reply(reply_to, reply.encode()):
            logger.info("reply to %s not sent", reply_to, extra={"lead_id": reply.lead_id})

    def thread_publisher(self) -> ThreadPublisher:
        """A publisher for handlers and schedulers running on threads."""
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        return ThreadPublisher(self, self._loop)

    async def run(
        self, stop: asyncio.Event, shutdown_grace: float = 30.0, *, embedded: bool = False
    ) -> None:
        """Consume until ``stop`` is set, then finish what is in hand and close. An
        ``embedded`` worker (inside an HTTP service) leaves the "stopped" line to it."""
        self._loop = asyncio.get_running_loop()
        self.client.start()
        ready = asyncio.ensure_future(self.client.wait_connected(24 * 3600.0))
        stopped = asyncio.ensure_future(stop.wait())
        await asyncio.wait({ready, stopped}, return_when=asyncio.FIRST_COMPLETED)
        if ready.done():
            logger.info("%s ready for action: %s", self._name, ", ".join(self._consumers))
        else:
            ready.cancel()
        await stopped
        in_hand = len(self._tasks)
        self.client.stop_consuming()
        unfinished = 0
        if self._tasks:
            _, pending = await asyncio.wait(set(self._tasks), timeout=shutdown_grace)
            for task in pending:
                task.cancel()
            unfinished = len(pending)
        await self.client.close()
        for pool in self._pools.values():
            pool.shutdown(wait=False, cancel_futures=True)
        if unfinished:
            logger.warning(
                "%s stopped; %d message(s) unfinished go back to their queue",
                self._name,
                unfinished,
            )
        else:
            (logger.debug if embedded else logger.info)(
                "%s stopped (%d message(s) finished on the way)", self._name, in_hand
            )

    # --- one message ----------------------------------------------------------------------

    def _on_delivery(self, delivery: Delivery) -> None:
        task = asyncio.get_running_loop().create_task(self._process(delivery))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _call(self, queue: str, fn: Callable[..., Any], *args: Any) -> None:
        pool = self._pools.get(queue)
        if pool is None:
            await fn(*args)
        else:
            context = contextvars.copy_context()
            await asyncio.get_running_loop().run_in_executor(pool, context.run, fn, *args)

    async def _process(self, delivery: Delivery) -> None:
        try:
            envelope = Envelope.decode(delivery.body)
        except MessageDecodeError as exc:
            logger.warning("unreadable message on %s parked: %s", delivery.queue, exc)
            self.client.reject(delivery)
            return
        # A copy of a message this process still handles (RabbitMQ handed it out again
        # after the connection dropped) waits for the first, then runs: it finds the work
        # recorded, or does what the first could not.
        earlier = self._in_hand.get(envelope.message_id)
        if earlier is not None:
            await asyncio.wait({earlier})
        task = asyncio.current_task()
        assert task is not None
        self._in_hand[envelope.message_id] = task
        _message_id.set(envelope.message_id)
        try:
            await self._handle(delivery, envelope)
        finally:
            if self._in_hand.get(envelope.message_id) is task:
                del self._in_hand[envelope.message_id]

    async def _handle(self, delivery: Delivery, envelope: Envelope) -> None:
        payload = envelope.payload
        consumer = self._consumers.get(delivery.queue)
        message: Message | None = None
        try:
            if consumer is None:
                raise MessageDecodeError(f"no handler for {delivery.queue}", payload)
            message = decode_any(payload)
            if delivery.queue != message.QUEUE:
                raise MessageDecodeError(
                    f"{message.KIND} does not belong on {delivery.queue}", payload
                )
            try:
                await self._call(delivery.queue, consumer.handler, message)
            except self._outage_errors as exc:
                raise outage_error(exc) from exc
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if not isinstance(exc, EXPECTED):
                logger.error(
                    "%s handler failed on %s",
                    delivery.queue,
                    envelope.message_id,
                    exc_info=exc,
                    extra=ids_of(payload),
                )
            try:
                await self._failed(delivery, envelope, message, consumer, exc)
            except NotConnected as lost:
                logger.warning(
                    "broker lost while handling a failure on %s (%s); the message comes back",
                    delivery.queue,
                    lost,
                    extra=ids_of(payload),
                )
            return
        self.client.ack(delivery)

    async def _failed(
        self,
        delivery: Delivery,
        envelope: Envelope,
        message: Message | None,
        consumer: Consumer | None,
        exc: BaseException,
    ) -> None:
        plan = plan_failure(envelope.options, exc)
        queue = delivery.queue
        if plan.delay_ms is not None:
            retry = envelope.with_options(plan.retry_options())
            # (the client declares the tier the first time it publishes to it)
            await self.client.publish(retry_queue_name(queue, plan.delay_ms), retry.encode())
            self.client.ack(delivery)
            note_retry(queue, plan, envelope.payload)
            return
        if consumer is not None and consumer.on_exhausted is not None and message is not None:
            try:
                await self._call(queue, consumer.on_exhausted, message, plan.reason)
            except Exception:
                logger.exception(
                    "on_exhausted hook of %s failed", queue, extra=ids_of(envelope.payload)
                )
        body = envelope.with_options({"failures": plan.failures}).encode()
        parked = ParkedMessage(
            queue=queue,
            message_id=envelope.message_id,
            payload=envelope.payload,
            attempts=plan.attempt,
            failures=plan.failures,
            body=body.decode(),
        )
        if self._record_dead_letter is not None:
            try:
                await self._record_dead_letter(parked)
            except Exception:
                logger.exception("could not mirror the dead letter %s", envelope.message_id)
        note_parked(parked)
        try:
            await self.client.publish(xq_name(queue), body)
        except NotConnected:
            # The queue's own dead-lettering parks it (with the earlier attempts' history).
            self.client.reject(delivery)
            return
        self.client.ack(delivery)


@dataclass(frozen=True, slots=True)
class ThreadPublisher:
    """``publish`` for code running on a thread: the worker's connection
    belongs to its event loop, so each call is handed over to the loop."""

    worker: Worker
    loop: asyncio.AbstractEventLoop

    def publish(self, message: Message) -> None:
        future = asyncio.run_coroutine_threadsafe(self.worker.publish(message), self.loop)
        try:
            future.result(THREAD_PUBLISH_TIMEOUT_SECONDS)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise NotConnected("the broker did not confirm in time") from None
