"""Short blocking connections for operators and metrics: queue depths, taking parked
messages out of ``<queue>.XQ`` and putting messages back on their work queue.

AMQP cannot browse, so a scan takes every parked message (unacked), keeps the ones asked
for and hands the rest back untouched."""

from __future__ import annotations

import json
from collections.abc import Collection, Sequence
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import pika
import pika.exceptions

from shared.messaging.envelope import Envelope
from shared.messaging.messages import Message
from shared.messaging.topology import dead_queue_arguments, work_queue_arguments, xq_name


def with_connection_defaults(url: str) -> str:
    """Heartbeats and a blocked-connection timeout unless the URL sets its own."""
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    query.setdefault("heartbeat", "30")
    query.setdefault("blocked_connection_timeout", "60")
    query.setdefault("connection_attempts", "3")
    query.setdefault("retry_delay", "1")
    return urlunsplit(parts._replace(query=urlencode(query)))


def _connect(broker_url: str) -> pika.BlockingConnection:
    return pika.BlockingConnection(pika.URLParameters(with_connection_defaults(broker_url)))


class BlockingPublisher:
    """Publishing from a command (``leadflow batches send``): one connection, confirms."""

    def __init__(self, broker_url: str, queue_type: str = "classic") -> None:
        self._connection = _connect(broker_url)
        self._channel = self._connection.channel()
        self._channel.confirm_delivery()
        self._queue_type = queue_type

    def publish(self, message: Message) -> None:
        envelope = Envelope.of(message)
        self._channel.queue_declare(
            queue=envelope.queue,
            durable=True,
            arguments=work_queue_arguments(envelope.queue, self._queue_type),
        )
        self._channel.basic_publish(
            "",
            envelope.queue,
            envelope.encode(),
            pika.BasicProperties(delivery_mode=2),
            mandatory=True,
        )

    def close(self) -> None:
        if self._connection.is_open:
            self._connection.close()


def queue_depths(broker_url: str, queues: Sequence[str]) -> dict[str, int]:
    """Messages waiting in each work queue and its dead-letter queue (a passive declare)."""
    return {queue: waiting for queue, (waiting, _) in queue_stats(broker_url, queues).items()}


def queue_stats(broker_url: str, queues: Sequence[str]) -> dict[str, tuple[int, int]]:
    """(messages waiting, consumers) of each work queue and its dead-letter queue."""
    connection = _connect(broker_url)
    try:
        channel = connection.channel()
        stats = {}
        for queue in [*queues, *(xq_name(q) for q in queues)]:
            try:
                method = channel.queue_declare(queue, passive=True).method
                stats[queue] = (method.message_count, method.consumer_count)
            except pika.exceptions.ChannelClosedByBroker:
                channel = connection.channel()  # the queue does not exist yet
        return stats
    finally:
        connection.close()


def take_parked(
    broker_url: str, queue: str, message_ids: Collection[str], queue_type: str = "classic"
) -> set[str]:
    """Remove the parked messages with these ids from ``<queue>.XQ``; return the ids found."""
    connection = _connect(broker_url)
    found: set[str] = set()
    try:
        channel = connection.channel()
        channel.queue_declare(
            queue=xq_name(queue), durable=True, arguments=dead_queue_arguments(queue_type)
        )
        keep: list[int] = []
        while True:
            method, _properties, body = channel.basic_get(xq_name(queue), auto_ack=False)
            if method is None:
                break
            message_id = _message_id(body)
            if message_id is not None and message_id in message_ids:
                channel.basic_ack(method.delivery_tag)
                found.add(message_id)
            else:
                keep.append(method.delivery_tag)
        for tag in keep:
            channel.basic_nack(tag, requeue=True)
    finally:
        connection.close()
    return found


def republish(broker_url: str, queue: str, bodies: list[str], queue_type: str = "classic") -> None:
    """Put message bodies back on their work queue, each confirmed by the broker."""
    connection = _connect(broker_url)
    try:
        channel = connection.channel()
        channel.confirm_delivery()
        channel.queue_declare(
            queue=queue, durable=True, arguments=work_queue_arguments(queue, queue_type)
        )
        for body in bodies:
            channel.basic_publish(
                "",
                queue,
                fresh_attempts(body).encode(),
                pika.BasicProperties(delivery_mode=2),
                mandatory=True,
            )
    finally:
        connection.close()


def fresh_attempts(body: str) -> str:
    """A replayed message starts its retry schedule again; its history stays for reading."""
    message: dict[str, Any] = json.loads(body)
    options = dict(message.get("options") or {})
    options.pop("attempt", None)
    options["replayed"] = int(options.get("replayed", 0)) + 1
    message["options"] = options
    return json.dumps(message)


def _message_id(body: bytes) -> str | None:
    try:
        value = json.loads(body).get("message_id")
    except (ValueError, AttributeError):
        return None
    return value if isinstance(value, str) else None
