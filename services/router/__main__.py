"""``leadflow router``: the flow router, one asyncio process (scale with copies)."""

from __future__ import annotations

import asyncio
import sys
from functools import partial

from services.router import worker
from shared import routing
from shared.bootstrap import make_worker, worker_basics
from shared.config import Settings, load_settings
from shared.db.grouped import GroupCommit
from shared.messaging import Consumer
from shared.messaging.runner import run_worker


async def serve(settings: Settings, stop: asyncio.Event) -> None:
    basics = worker_basics("router", settings, db_threads=2)
    app = make_worker(settings, basics.db, "router")
    route = GroupCommit(basics.db, partial(routing.route_with, basics.configs.get))
    deps = worker.Deps(route, app)
    app.consume(
        Consumer(worker.QUEUE, partial(worker.handle, deps=deps), concurrency=worker.CONCURRENCY)
    )
    try:
        await app.run(stop, settings.shutdown_grace)
    finally:
        await basics.db.close()


def main() -> None:
    settings = load_settings()
    sys.exit(
        run_worker(
            partial(serve, settings),
            queues=[worker.QUEUE],
            broker_url=settings.broker_url,
            metrics_port=settings.metrics_port,
        )
    )


if __name__ == "__main__":
    main()
