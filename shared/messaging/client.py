"""An asyncio RabbitMQ client: windowed publisher confirms, replies, and consuming.

One pika ``AsyncioConnection`` on the process's event loop and one channel in confirm
mode. ``publish`` returns when the broker has confirmed the message (many may be in
flight at once, so a confirm costs nothing per message). An aiohttp service gets an
exclusive, auto-deleted reply queue whose name goes out with each lead, so the router
can answer this process. A worker consumes its work queues, each with its own prefetch
window, and gets each message as a ``Delivery`` to ack or reject later. On any loss the
client reconnects by itself; callers see ``NotConnected`` meanwhile (the outbox or the
retry keeps their messages) and unacknowledged deliveries go back to their queue.

Why one module of this size: it is the only code that touches pika (STYLE.md), and the
connection's life (connect, declare, consume, confirm, reconnect, close) is one state
machine whose parts share the channel and the in-flight confirms; split, each part would
reach into the others' state.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pika
from pika.adapters.asyncio_connection import AsyncioConnection
from pika.adapters.utils.io_services_utils import _AsyncTransportBase
from pika.channel import Channel
from pika.spec import Basic

from shared.errors import LeadflowError
from shared.messaging.messages import FlowReply
from shared.messaging.topology import (
    dead_queue_arguments,
    retry_queue_arguments,
    tier_of,
    work_queue_arguments,
    xq_name,
)

logger = logging.getLogger(__name__)


def _produce_joined(self: Any) -> None:
    """pika sends every frame of its write buffer with a system call of its own (three per
    published message, one per ack); under load dozens wait together, so they go out
    joined in one send."""
    buffers = self._tx_buffers
    if len(buffers) > 1:
        joined = b"".join(buffers)
        buffers.clear()
        buffers.append(joined)
    _pika_produce(self)


_pika_produce = _AsyncTransportBase._produce
_AsyncTransportBase._produce = _produce_joined

_PERSISTENT = pika.BasicProperties(delivery_mode=2, content_type="application/json")
_TRANSIENT = pika.BasicProperties(delivery_mode=1, content_type="application/json")
#: How long a closing connection may take before the client gives up on it.
CLOSE_TIMEOUT_SECONDS = 3.0


class NotConnected(LeadflowError):
    """The broker cannot take messages right now; the outbox or the retry keeps them."""


@dataclass(frozen=True, slots=True)
class Delivery:
    """One consumed message, to ``ack`` or ``reject`` on the channel it came from."""

    queue: str
    body: bytes
    tag: int
    channel: Any  # the pika channel it arrived on
    redelivered: bool = False


class AsyncBrokerClient:
    def __init__(
        self,
        url: str,
        *,
        queues: Sequence[str] = (),
        on_reply: Callable[[FlowReply], None] | None = None,
        reconnect_delay: float = 1.0,
        queue_type: str = "classic",
        consume: Mapping[str, int] | None = None,
        on_delivery: Callable[[Delivery], None] | None = None,
        reply_queue: bool = True,
    ) -> None:
        """``queues`` are declared on every connect; ``consume`` maps each queue to
        consume to its prefetch window."""
        self._queue_type = queue_type
        self._consume = dict(consume or {})
        self._on_delivery = on_delivery
        self._wants_reply_queue = reply_queue
        self._consumer_tags: dict[str, str] = {}  # consumer tag -> queue
        self._declared: set[str] = set()
        self._parameters = pika.URLParameters(url)
        self._parameters.heartbeat = 30
        self._parameters.connection_attempts = 1
        self._queues = tuple(dict.fromkeys([*queues, *self._consume]))
        self._on_reply = on_reply
        self._reconnect_delay = reconnect_delay
        self._connection: AsyncioConnection | None = None
        self._channel: Channel | None = None
        self._ready = asyncio.Event()
        self._pending: dict[int, asyncio.Future[None]] = {}
        self._next_tag = 0
        self._closing = False
        self._reconnect_handle: asyncio.TimerHandle | None = None
        self._closed_waiter: asyncio.Future[None] | None = None
        self._channel_lost: asyncio.Future[None] | None = None
        self._warned = False
        self.reply_queue: str | None = None

    # --- lifecycle ------------------------------------------------------------------------

    def start(self) -> None:
        self._closing = False
        self._connect()

    async def close(self) -> None:
        """Close the connection (bounded in time whatever the broker does)."""
        self._closing = True
        if self._reconnect_handle is not None:
            self._reconnect_handle.cancel()
        connection = self._connection
        if connection is not None and not (connection.is_closed or connection.is_closing):
            closed = asyncio.get_running_loop().create_future()
            self._closed_waiter = closed
            try:
                connection.close()
                await asyncio.wait_for(closed, timeout=CLOSE_TIMEOUT_SECONDS)
            except (TimeoutError, pika.exceptions.AMQPError, OSError):
                logger.debug("broker connection did not close cleanly")
        self._fail_pending("client closed")

    @property
    def connected(self) -> bool:
        return self._ready.is_set()

    async def wait_connected(self, timeout: float) -> bool:
        try:
            await asyncio.wait_for(self._ready.wait(), timeout)
        except TimeoutError:
            return False
        return True

    # --- publishing -----------------------------------------------------------------------

    async def publish(self, queue: str, body: bytes) -> None:
        """Publish one persistent message and wait for the broker's confirm (to a delay
        tier: declared first, once per connection)."""
        tier = tier_of(queue)
        if tier is not None and queue not in self._declared:
            await self.declare(queue, retry_queue_arguments(*tier, self._queue_type))
        channel = self._open_channel()
        self._next_tag += 1
        tag = self._next_tag
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending[tag] = future
        try:
            channel.basic_publish(
                exchange="", routing_key=queue, body=body, mandatory=True, properties=_PERSISTENT
            )
        except Exception as exc:
            self._pending.pop(tag, None)
            raise NotConnected(f"publish failed: {exc}") from exc
        await future

    def send_reply(self, queue: str, body: bytes) -> bool:
        """Best effort, unconfirmed and not persistent: a reply to a waiting intake
        process (if it is gone, the lead's state is in the database). False if not sent."""
        channel = self._channel
        if not self._ready.is_set() or channel is None or not channel.is_open:
            return False
        self._next_tag += 1  # the channel is in confirm mode: every publish takes a tag
        try:
            channel.basic_publish(exchange="", routing_key=queue, body=body, properties=_TRANSIENT)
        except Exception:
            return False
        return True

    async def declare(self, queue: str, arguments: dict[str, Any]) -> None:
        """Declare a durable queue once per connection (retry tiers, declared on first use)."""
        if queue in self._declared:
            return
        channel = self._open_channel()
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        def declared(_frame: Any) -> None:
            if not done.done():
                done.set_result(None)

        channel.queue_declare(queue=queue, durable=True, arguments=arguments, callback=declared)
        await _until(done, self._closed_future())
        self._declared.add(queue)

    def _open_channel(self) -> Channel:
        channel = self._channel
        if not self._ready.is_set() or channel is None or not channel.is_open:
            raise NotConnected("broker not connected")
        return channel

    # --- consuming ------------------------------------------------------------------------

    def ack(self, delivery: Delivery) -> bool:
        """Acknowledge on the delivery's own channel; False when that channel is gone (the
        broker then hands the message out again, and consumers are idempotent)."""
        channel = self._channel
        if channel is None or delivery.channel is not channel or not channel.is_open:
            return False
        channel.basic_ack(delivery.tag)
        return True

    def reject(self, delivery: Delivery) -> bool:
        """Reject without requeueing: the queue dead-letters the message to ``<queue>.XQ``."""
        channel = self._channel
        if channel is None or delivery.channel is not channel or not channel.is_open:
            return False
        channel.basic_nack(delivery.tag, requeue=False)
        return True

    def stop_consuming(self) -> None:
        """Take no new messages (a graceful stop); those in hand can still be acked."""
        self._consume = {}
        channel = self._channel
        tags, self._consumer_tags = self._consumer_tags, {}
        if channel is not None and channel.is_open:
            for tag in tags:
                channel.basic_cancel(tag)

    # --- pika callbacks -------------------------------------------------------------------

    def _connect(self) -> None:
        self._reconnect_handle = None
        if self._closing:
            return
        self._connection = AsyncioConnection(
            parameters=self._parameters,
            on_open_callback=self._on_connection_open,
            on_open_error_callback=self._on_connection_open_error,
            on_close_callback=self._on_connection_closed,
            custom_ioloop=asyncio.get_running_loop(),
        )

    def _schedule_reconnect(self) -> None:
        if self._closing or self._reconnect_handle is not None:
            return
        loop = asyncio.get_running_loop()
        self._reconnect_handle = loop.call_later(self._reconnect_delay, self._connect)

    def _on_connection_open(self, connection: AsyncioConnection) -> None:
        connection.channel(on_open_callback=self._on_channel_open)

    def _on_connection_open_error(self, _connection: AsyncioConnection, error: Exception) -> None:
        # Said once per outage at WARNING; the retries every second are DEBUG.
        log = logger.debug if self._warned else logger.warning
        log("broker unreachable (%s); retrying", error or type(error).__name__)
        self._warned = True
        self._schedule_reconnect()

    def _on_connection_closed(self, _connection: AsyncioConnection, reason: Exception) -> None:
        self._lost(f"connection closed: {reason}")
        waiter = self._closed_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        if not self._closing:
            logger.warning("broker connection lost (%s); reconnecting", reason)
            self._warned = True
            self._schedule_reconnect()

    def _on_channel_open(self, channel: Channel) -> None:
        self._channel = channel
        self._next_tag = 0
        channel.add_on_close_callback(self._on_channel_closed)
        channel.add_on_return_callback(self._on_return)
        channel.confirm_delivery(
            ack_nack_callback=self._on_confirm,
            callback=lambda _frame: self._declare(list(self._queues)),
        )

    def _declare(self, queues: list[str]) -> None:
        channel = self._channel
        if channel is None:
            return
        if not queues:
            self._start_consuming(list(self._consume.items()))
            return
        queue, rest = queues[0], queues[1:]
        channel.queue_declare(
            queue=xq_name(queue),
            durable=True,
            arguments=dead_queue_arguments(self._queue_type),
            callback=lambda _f: channel.queue_declare(
                queue=queue,
                durable=True,
                arguments=work_queue_arguments(queue, self._queue_type),
                callback=lambda _g: self._declare(rest),
            ),
        )

    def _start_consuming(self, queues: list[tuple[str, int]]) -> None:
        """One consumer per queue, each with its own prefetch (set just before it)."""
        channel = self._channel
        if channel is None:
            return
        if not queues:
            if self._consume:
                logger.info(
                    "consuming %s",
                    ", ".join(f"{q} (prefetch {n})" for q, n in self._consume.items()),
                )
            self._after_consumers()
            return
        (queue, prefetch), rest = queues[0], queues[1:]

        def consume(_frame: Any) -> None:
            tag = channel.basic_consume(queue=queue, on_message_callback=self._on_message)
            self._consumer_tags[tag] = queue
            self._start_consuming(rest)

        channel.basic_qos(prefetch_count=prefetch, callback=consume)

    def _after_consumers(self) -> None:
        channel = self._channel
        if channel is None:
            return
        if self._wants_reply_queue:
            channel.queue_declare(
                queue="", exclusive=True, auto_delete=True, callback=self._on_reply_queue
            )
        else:
            self._connected()

    def _connected(self) -> None:
        if self._warned:
            logger.info("broker connection back")
            self._warned = False
        self._ready.set()

    def _on_message(
        self, channel: Channel, method: Basic.Deliver, _props: Any, body: bytes
    ) -> None:
        if self._on_delivery is None:
            return
        self._on_delivery(
            Delivery(
                queue=self._consumer_tags.get(method.consumer_tag, method.routing_key),
                body=body,
                tag=method.delivery_tag,
                channel=channel,
                redelivered=bool(method.redelivered),
            )
        )

    def _closed_future(self) -> asyncio.Future[None]:
        future = self._channel_lost
        if future is None or future.done():
            future = asyncio.get_running_loop().create_future()
            self._channel_lost = future
        return future

    def _on_reply_queue(self, frame: Any) -> None:
        channel = self._channel
        if channel is None:
            return
        self.reply_queue = frame.method.queue
        channel.basic_consume(
            queue=self.reply_queue, on_message_callback=self._on_reply_message, auto_ack=True
        )
        self._connected()
        logger.info("connected to the broker; replies on %s", self.reply_queue)

    def _on_reply_message(
        self, _channel: Channel, _method: Basic.Deliver, _props: Any, body: bytes
    ) -> None:
        if self._on_reply is None:
            return
        try:
            reply = FlowReply.decode(json.loads(body))
        except (ValueError, LeadflowError):
            logger.warning("dropping an unreadable reply: %r", body[:200])
            return
        self._on_reply(reply)

    def _on_confirm(self, frame: Any) -> None:
        method = frame.method
        acked = isinstance(method, Basic.Ack)
        if method.multiple:
            tags = [t for t in self._pending if t <= method.delivery_tag]
        else:
            tags = [method.delivery_tag]
        for tag in tags:
            future = self._pending.pop(tag, None)
            if future is None or future.done():
                continue
            if acked:
                future.set_result(None)
            else:
                future.set_exception(NotConnected("broker refused the message (nack)"))

    def _on_return(self, _channel: Channel, method: Any, _props: Any, _body: bytes) -> None:
        logger.error("message to %s was unroutable: %s", method.routing_key, method.reply_text)

    def _on_channel_closed(self, _channel: Channel, reason: Exception) -> None:
        self._lost(f"channel closed: {reason}")
        connection = self._connection
        if connection is not None and connection.is_open and not self._closing:
            connection.close()

    def _lost(self, why: str) -> None:
        self._ready.clear()
        self._channel = None
        self._consumer_tags = {}
        self._declared.clear()
        lost = self._channel_lost
        if lost is not None and not lost.done():
            lost.set_result(None)
        self.reply_queue = None
        self._fail_pending(why)

    def _fail_pending(self, why: str) -> None:
        pending, self._pending = self._pending, {}
        for future in pending.values():
            if not future.done():
                future.set_exception(NotConnected(why))


async def _until(done: asyncio.Future[None], lost: asyncio.Future[None]) -> None:
    """Wait for ``done`` unless the channel is lost first (then raise NotConnected)."""
    finished, _ = await asyncio.wait({done, lost}, return_when=asyncio.FIRST_COMPLETED)
    if done not in finished:
        raise NotConnected("the channel closed while declaring a queue")
