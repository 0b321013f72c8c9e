"""A ``Worker`` of the one runtime on its own event loop in a thread, for integration
tests: started connected, stopped the way SIGTERM stops it."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from shared.messaging import Consumer, ParkedMessage, Worker
from tests.support.infra import wait_for


class Running:
    def __init__(self, worker: Worker, loop: asyncio.AbstractEventLoop | None = None) -> None:
        self.worker = worker
        self.loop = loop or asyncio.new_event_loop()
        self.stop_event: asyncio.Event | None = None
        self.thread = threading.Thread(target=self._main, daemon=True)
        self.started = threading.Event()
        self.stopped = False

    def _main(self) -> None:
        asyncio.set_event_loop(self.loop)

        async def body() -> None:
            self.stop_event = asyncio.Event()
            self.started.set()
            await self.worker.run(self.stop_event, shutdown_grace=10)

        try:
            self.loop.run_until_complete(body())
        finally:
            self.loop.close()

    def start(self) -> None:
        self.thread.start()
        assert self.started.wait(5)
        wait_for(lambda: self.worker.client.connected, timeout=10, message="worker connected")

    def stop(self) -> None:
        if self.stopped:
            return
        self.stopped = True
        assert self.stop_event is not None
        self.loop.call_soon_threadsafe(self.stop_event.set)
        self.thread.join(20)
        assert not self.thread.is_alive()


@contextmanager
def running(
    broker_url: str,
    queue: str,
    handler: Any,
    *,
    on_exhausted: Any = None,
    parked: list[ParkedMessage] | None = None,
    queue_type: str = "classic",
    concurrency: int = 8,
) -> Iterator[Running]:
    """A worker consuming ``queue`` with ``handler`` (a coroutine function, or a plain one
    that runs on the consumer's threads)."""

    async def mirror(message: ParkedMessage) -> None:
        if parked is not None:
            parked.append(message)

    worker = Worker(broker_url, queue_type=queue_type, record_dead_letter=mirror)
    worker.consume(Consumer(queue, handler, on_exhausted, concurrency=concurrency))
    run = Running(worker)
    run.start()
    try:
        yield run
    finally:
        run.stop()
