"""RabbitMQ from the tests' side: publishing typed messages as the services do, reading
queue counts and what was parked in a dead-letter queue."""

from __future__ import annotations

import json
from typing import Any

import pika

from shared.messaging import Envelope, Message
from tests.support.infra import rabbitmqctl, wait_for


def publish_messages(broker_url: str, *messages: Message) -> None:
    """Publish ``messages`` to their work queues (confirmed, persistent), bypassing the outbox."""
    connection = pika.BlockingConnection(pika.URLParameters(broker_url))
    try:
        channel = connection.channel()
        channel.confirm_delivery()
        for message in messages:
            envelope = Envelope.of(message)
            channel.basic_publish(
                "", envelope.queue, envelope.encode(), pika.BasicProperties(delivery_mode=2)
            )
    finally:
        connection.close()


def queue_counts(broker_url: str) -> dict[str, tuple[int, int]]:
    vhost = pika.URLParameters(broker_url).virtual_host
    out = rabbitmqctl(
        "list_queues",
        "-p",
        vhost,
        "name",
        "messages_ready",
        "messages_unacknowledged",
        "--no-table-headers",
    )
    counts = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 3:
            counts[parts[0]] = (int(parts[1]), int(parts[2]))
    return counts


def get_parked(broker_url: str, queue: str) -> list[dict[str, Any]]:
    connection = pika.BlockingConnection(pika.URLParameters(broker_url))
    try:
        channel = connection.channel()
        bodies: list[dict[str, Any]] = []
        while True:
            method, _props, body = channel.basic_get(f"{queue}.XQ", auto_ack=True)
            if method is None:
                return bodies
            bodies.append(json.loads(body))
    finally:
        connection.close()


def publish_until_parked(broker_url: str, message: Message) -> list[dict[str, Any]]:
    """Publish ``message`` to its work queue, then wait (15 s at most) until what is parked
    in that queue's dead-letter queue can be taken off it: the parked bodies."""
    publish_messages(broker_url, message)
    queue = Envelope.of(message).queue
    return wait_for(
        lambda: get_parked(broker_url, queue), timeout=15, message=f"a message parked in {queue}"
    )
