"""Dead-letter queues for operators: take parked messages out of ``<queue>.XQ`` and put
messages back on their work queue. AMQP cannot browse, so a scan takes every parked
message (unacked), keeps the ones asked for and hands the rest back untouched."""

from __future__ import annotations

import json
from collections.abc import Collection
from typing import Any

import pika

from shared.messaging.broker import with_connection_defaults
from shared.messaging.topology import dead_queue_arguments, work_queue_arguments, xq_name


def take_parked(
    broker_url: str, queue: str, message_ids: Collection[str], queue_type: str = "classic"
) -> set[str]:
    """Remove the parked messages with these ids from ``<queue>.XQ``; return the ids found."""
    connection = pika.BlockingConnection(pika.URLParameters(with_connection_defaults(broker_url)))
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
    connection = pika.BlockingConnection(pika.URLParameters(with_connection_defaults(broker_url)))
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
