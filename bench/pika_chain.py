"""The baseline for end to end: raw pika with the same three queue hops as leadflow
(intake -> router, router -> delivery, step result -> router), persistent messages and
windowed publisher confirms. Each hop is its own process: it consumes with prefetch,
forwards each message, and acks the input only when the broker confirmed the output."""

from __future__ import annotations

import multiprocessing
import sys
import time
from typing import Any

import pika
from pika.adapters.select_connection import SelectConnection

PREFETCH = 200
WINDOW = 500


def hop(url: str, source: str, target: str | None, ready: Any, done: Any, total: int) -> None:
    """Forward every message from ``source`` to ``target`` (None: just count and ack)."""
    state: dict[str, Any] = {"pending": {}, "next": 0, "count": 0}

    def on_open(connection: SelectConnection) -> None:
        connection.channel(on_open_callback=on_channel)

    def on_channel(channel: Any) -> None:
        state["channel"] = channel
        for q in (source, target):
            if q:
                channel.queue_declare(q, durable=True)
        channel.basic_qos(prefetch_count=PREFETCH)
        if target:
            channel.confirm_delivery(on_confirm)
        channel.basic_consume(source, on_message)
        ready.set()

    def on_message(channel: Any, method: Any, _props: Any, body: bytes) -> None:
        if target is None:
            channel.basic_ack(method.delivery_tag)
            state["count"] += 1
            if state["count"] >= total:
                done.set()
            return
        state["next"] += 1
        state["pending"][state["next"]] = method.delivery_tag
        channel.basic_publish("", target, body, pika.BasicProperties(delivery_mode=2))

    def on_confirm(frame: Any) -> None:
        tag, multiple = frame.method.delivery_tag, frame.method.multiple
        tags = [t for t in state["pending"] if t <= tag] if multiple else [tag]
        for t in tags:
            state["channel"].basic_ack(state["pending"].pop(t))

    connection = SelectConnection(pika.URLParameters(url), on_open_callback=on_open)
    connection.ioloop.start()


def produce(url: str, queue: str, total: int) -> None:
    """Publish ``total`` persistent messages with up to WINDOW unconfirmed at once."""
    state = {"sent": 0, "confirmed": 0}

    def on_open(connection: SelectConnection) -> None:
        connection.channel(on_open_callback=on_channel)

    def on_channel(channel: Any) -> None:
        channel.queue_declare(queue, durable=True)
        channel.confirm_delivery(lambda frame: on_confirm(channel, frame))
        fill(channel)

    def fill(channel: Any) -> None:
        while state["sent"] < total and state["sent"] - state["confirmed"] < WINDOW:
            state["sent"] += 1
            channel.basic_publish(
                "",
                queue,
                b'{"lead_id": "%d"}' % state["sent"],
                pika.BasicProperties(delivery_mode=2),
            )

    def on_confirm(channel: Any, frame: Any) -> None:
        state["confirmed"] = frame.method.delivery_tag
        if state["confirmed"] >= total:
            channel.connection.close()
            return
        fill(channel)

    connection = SelectConnection(
        pika.URLParameters(url),
        on_open_callback=on_open,
        on_close_callback=lambda conn, _reason: conn.ioloop.stop(),
    )
    connection.ioloop.start()


def run(url: str, total: int) -> float:
    """Messages per second through the three hops."""
    ctx = multiprocessing.get_context("spawn")
    # producer -> q1 -> hop -> q2 -> hop -> q3 -> counter: three queue hops, like
    # intake -> router -> http_delivery -> (step result) router.
    ready = [ctx.Event() for _ in range(3)]
    done = ctx.Event()
    names = ["bench.q1", "bench.q2", "bench.q3"]
    procs = [
        ctx.Process(target=hop, args=(url, names[0], names[1], ready[0], done, total)),
        ctx.Process(target=hop, args=(url, names[1], names[2], ready[1], done, total)),
        ctx.Process(target=hop, args=(url, names[2], None, ready[2], done, total)),
    ]
    for p in procs:
        p.start()
    for event in ready:
        event.wait(30)
    started = time.monotonic()
    producer = ctx.Process(target=produce, args=(url, names[0], total))
    producer.start()
    done.wait(600)
    elapsed = time.monotonic() - started
    producer.join(10)
    for p in [producer, *procs]:
        p.terminate()
        p.join()
    return total / elapsed


if __name__ == "__main__":
    sys.stdout.write(f"{run(sys.argv[1], int(sys.argv[2])):.0f} msg/s\n")
