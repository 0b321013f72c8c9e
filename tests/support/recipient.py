"""A real HTTP recipient for tests: an aiohttp server in a thread, scripted per path.

``script(path, [(status, body, content_type), ...])`` answers the next requests in turn
(the last answer repeats); every request is recorded with its headers and body. A reply
with ``hold`` keeps its request waiting until the test sets that event.
"""

from __future__ import annotations

import asyncio
import json
import threading
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.support.infra import free_port


@dataclass
class Received:
    path: str
    method: str
    headers: dict[str, str]
    body: bytes
    query: dict[str, str]

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Reply:
    status: int = 200
    body: str = '{"outcome": "success"}'
    content_type: str = "application/json"
    delay: float = 0.0
    hold: threading.Event | None = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Recipient:
    port: int = field(default_factory=free_port)
    received: list[Received] = field(default_factory=list)
    scripts: dict[str, list[Reply]] = field(default_factory=dict)
    in_flight: dict[str, int] = field(default_factory=dict)
    peak_in_flight: dict[str, int] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _loop: asyncio.AbstractEventLoop | None = None
    _runner: web.AppRunner | None = None
    _thread: threading.Thread | None = None

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def script(self, path: str, replies: list[Reply]) -> None:
        with self._lock:
            self.scripts[path] = list(replies)

    def requests(self, path: str) -> list[Received]:
        with self._lock:
            return [r for r in self.received if r.path == path]

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        with self._lock:
            self.received.append(
                Received(
                    request.path, request.method, dict(request.headers), body, dict(request.query)
                )
            )
            replies = self.scripts.get(request.path) or [Reply()]
            reply = replies.pop(0) if len(replies) > 1 else replies[0]
            now = self.in_flight.get(request.path, 0) + 1
            self.in_flight[request.path] = now
            self.peak_in_flight[request.path] = max(now, self.peak_in_flight.get(request.path, 0))
        try:
            if reply.delay:
                await asyncio.sleep(reply.delay)
            while reply.hold is not None and not reply.hold.is_set():
                await asyncio.sleep(0.02)
        finally:
            with self._lock:
                self.in_flight[request.path] -= 1
        return web.Response(
            status=reply.status,
            body=reply.body.encode(),
            content_type=reply.content_type,
            headers=reply.headers,
        )

    def start(self) -> Recipient:
        ready = threading.Event()

        def serve() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            app = web.Application()
            app.router.add_route("*", "/{tail:.*}", self._handle)
            self._runner = web.AppRunner(app, access_log=None)
            loop.run_until_complete(self._runner.setup())
            loop.run_until_complete(web.TCPSite(self._runner, "127.0.0.1", self.port).start())
            ready.set()
            loop.run_forever()
            loop.run_until_complete(self._runner.cleanup())
            loop.close()

        self._thread = threading.Thread(target=serve, daemon=True, name=f"recipient-{self.port}")
        self._thread.start()
        ready.wait(10)
        return self

    def stop(self) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(10)
