"""``leadflow router``: the flow router, one asyncio process (scale with copies)."""

from __future__ import annotations

import asyncio
from functools import partial

from services.router import worker
from shared import routing
from shared.bootstrap import make_worker, started, worker_main
from shared.config import Settings
from shared.db.grouped import GroupCommit
from shared.messaging import Consumer


async def serve(settings: Settings, stop: asyncio.Event) -> None:
    async with started("router", settings, db_threads=2) as basics:
        app = make_worker(settings, basics.db, "router")
        route = GroupCommit(basics.db, partial(routing.route_with, basics.configs.get))
        deps = worker.Deps(route, app)
        handle = partial(worker.handle, deps=deps)
        app.consume(Consumer(worker.QUEUE, handle, concurrency=worker.CONCURRENCY))
        await app.run(stop, settings.shutdown_grace)


def main() -> None:
    worker_main("router", serve, queues=[worker.QUEUE])


if __name__ == "__main__":
    main()
