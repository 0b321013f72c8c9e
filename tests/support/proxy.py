"""A TCP proxy a test can cut and restore, to take a dependency away from one process."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Coroutine
from typing import TypeVar

import requests

from tests.support.infra import free_port, wait_for

T = TypeVar("T")


class Proxy:
    def __init__(self, target_port: int, target_host: str = "127.0.0.1") -> None:
        self.port = free_port()
        self._target = (target_host, target_port)
        self._loop = asyncio.new_event_loop()
        self._server: asyncio.AbstractServer | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    def start(self) -> Proxy:
        self._thread.start()
        self.restore()
        return self

    def _call(self, coro: Coroutine[object, object, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(10)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            with contextlib.suppress(Exception):
                writer.close()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self._target)
        except OSError:
            writer.close()
            return
        self._writers.update((writer, up_writer))
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))
        self._writers.discard(writer)
        self._writers.discard(up_writer)

    async def _start(self) -> None:
        self._server = await asyncio.start_server(self._client, "127.0.0.1", self.port)

    async def _cut(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for writer in list(self._writers):
            with contextlib.suppress(Exception):
                writer.transport.abort()
        self._writers.clear()

    def cut(self) -> None:
        self._call(self._cut())

    def restore(self) -> None:
        if self._server is None:
            self._call(self._start())

    def stop(self) -> None:
        self.cut()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()


def readiness(url: str) -> int:
    return requests.get(f"{url}/readyz", timeout=30).status_code


def check_unready_while_cut(url: str, proxy: Proxy, dependency: str) -> None:
    """A ready service whose ``dependency`` (``broker``, ``database``) ``proxy`` cuts
    answers /readyz with 503 naming it, then 200 again once it is restored."""
    assert readiness(url) == 200

    proxy.cut()

    wait_for(lambda: readiness(url) == 503, timeout=30, message="/readyz 503")
    answer = requests.get(f"{url}/readyz", timeout=30).json()
    assert answer["status"] == "unavailable"
    assert any(problem.startswith(dependency) for problem in answer["problems"])
    proxy.restore()
    wait_for(lambda: readiness(url) == 200, timeout=60, message="/readyz 200")
