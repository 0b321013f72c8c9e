"""Consuming work queues on one event loop: many messages in flight in one process.

For workers that mostly wait (an HTTP delivery waits on the buyer's server): each message
becomes a task, so in-flight requests cost a coroutine, not a thread. The prefetch window
(``concurrency``) bounds how many run at once. Semantics match the dramatiq workers:

- the body is dramatiq's (the outbox and every publisher write the same envelope);
- a handler that returns gets its message acked; one that raises follows the same retry
  policy (``plan_failure``): a copy with the next attempt number goes to the retry tier
  ``<queue>.retry.<ms>`` (confirmed) before the original is acked, and an exhausted
  message runs the consumer's ``on_exhausted``, is mirrored in the database and parked
  in ``<queue>.XQ`` with its whole history;
- a stop (``SIGTERM``) cancels the consumers, lets the messages in hand finish (up to a
  timeout), then closes; anything not acked goes back to its queue.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import dramatiq

from shared.errors import MessageDecodeError, PermanentError, TransientError
from shared.messaging.aio import AsyncBrokerClient, Delivery, NotConnected, encode_for_queue
from shared.messaging.broker import (
    ParkedMessage,
    ids_of,
    note_parked,
    note_retry,
    outage_error,
    plan_failure,
)
from shared.messaging.messages import Message, decode_any
from shared.messaging.topology import retry_queue_arguments, retry_queue_name, xq_name

logger = logging.getLogger(__name__)

AsyncHandler = Callable[[Message], Awaitable[None]]
ExhaustedHandler = Callable[[Message, str], Awaitable[None]]
AsyncDeadLetterRecorder = Callable[[ParkedMessage], Awaitable[None]]
EXPECTED = (TransientError, PermanentError, MessageDecodeError)


@dataclass(frozen=True, slots=True)
class AsyncConsumer:
    """The handler of one work queue, and what to do when its retries are used up."""

    queue: str
    handler: AsyncHandler
    on_exhausted: ExhaustedHandler | None = None


class AsyncWorker:
    """Consumers are added with ``consume`` before ``run``; handlers publish follow-ups
    with ``publish`` (confirmed, many in flight on the one connection)."""

    def __init__(
        self,
        url: str,
        *,
        concurrency: int,
        queue_type: str = "classic",
        record_dead_letter: AsyncDeadLetterRecorder | None = None,
        outage_errors: tuple[type[BaseException], ...] = (),
        name: str = "worker",
    ) -> None:
        self._url = url
        self._concurrency = concurrency
        self._consumers: dict[str, AsyncConsumer] = {}
        self._queue_type = queue_type
        self._record_dead_letter = record_dead_letter
        self._outage_errors = outage_errors
        self._name = name
        self._tasks: set[asyncio.Task[None]] = set()
        self._client: AsyncBrokerClient | None = None

    def consume(self, consumer: AsyncConsumer) -> None:
        if self._client is not None:
            raise RuntimeError("consumers are added before the worker runs")
        self._consumers[consumer.queue] = consumer

    @property
    def client(self) -> AsyncBrokerClient:
        if self._client is None:
            self._client = AsyncBrokerClient(
                self._url,
                queues=[],
                consume=list(self._consumers),
                prefetch=self._concurrency,
                on_delivery=self._on_delivery,
                reply_queue=False,
                queue_type=self._queue_type,
            )
        return self._client

    async def publish(self, message: Message) -> None:
        """Publish a follow-up message and wait for the broker's confirm."""
        queue, body = encode_for_queue(message)
        await self.client.publish(queue, body)

    async def run(self, stop: asyncio.Event, shutdown_timeout: float = 30.0) -> None:
        """Consume until ``stop`` is set, then finish what is in hand and close."""
        self.client.start()
        while not await self.client.wait_connected(5.0):
            if stop.is_set():
                break
            logger.warning("%s waiting for the broker", self._name)
        if self.client.connected:
            logger.info("%s ready for action: %s", self._name, ", ".join(self._consumers))
        await stop.wait()
        logger.info("%s stopping: %d message(s) in hand", self._name, len(self._tasks))
        self.client.stop_consuming()
        if self._tasks:
            _, pending = await asyncio.wait(set(self._tasks), timeout=shutdown_timeout)
            for task in pending:
                task.cancel()
            if pending:
                logger.warning("%d message(s) unfinished at the stop go back", len(pending))
        await self.client.close()

    # --- one message ----------------------------------------------------------------------

    def _on_delivery(self, delivery: Delivery) -> None:
        task = asyncio.get_running_loop().create_task(self._process(delivery))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _process(self, delivery: Delivery) -> None:
        try:
            envelope = dramatiq.Message.decode(delivery.body)
        except Exception as exc:
            logger.warning("unreadable message on %s parked: %s", delivery.queue, exc)
            self.client.reject(delivery)
            return
        payload = envelope.args[0] if envelope.args else None
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
                await consumer.handler(message)
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
                await self._failed(delivery, envelope, payload, message, consumer, exc)
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
        envelope: Any,
        payload: Any,
        message: Message | None,
        consumer: AsyncConsumer | None,
        exc: BaseException,
    ) -> None:
        plan = plan_failure(envelope.options, exc)
        queue = delivery.queue
        if plan.delay_ms is not None:
            tier = retry_queue_name(queue, plan.delay_ms)
            retry = envelope.copy(options=plan.retry_options())
            await self.client.declare(
                tier, retry_queue_arguments(queue, plan.delay_ms, self._queue_type)
            )
            await self.client.publish(tier, retry.encode())
            self.client.ack(delivery)
            note_retry(queue, plan, payload)
            return
        if consumer is not None and consumer.on_exhausted is not None and message is not None:
            try:
                await consumer.on_exhausted(message, plan.reason)
            except Exception:
                logger.exception("on_exhausted hook of %s failed", queue, extra=ids_of(payload))
        body = envelope.copy(options={"failures": plan.failures}).encode()
        parked = ParkedMessage(
            queue=queue,
            message_id=envelope.message_id,
            payload=payload,
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
