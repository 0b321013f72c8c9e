"""``leadflow http-delivery``: the HTTP delivery worker, one asyncio process.

``LEADFLOW_HTTP_CONCURRENCY`` requests may be in flight at once (the prefetch window);
the database work runs on a few threads. Scale out with more copies of the command.
"""

from __future__ import annotations

import asyncio

from services.http_delivery import worker
from shared.bootstrap import make_worker, started, worker_main
from shared.config import Settings
from shared.messaging import Consumer
from shared.outbound.send import client_session

#: Threads (one pooled connection each) for the grouped transactions: claims, records
#: and routing each run one transaction at a time, so a few threads are all they use.
DATABASE_THREADS = 4


async def serve(settings: Settings, stop: asyncio.Event) -> None:
    async with (
        started("http_delivery", settings, db_threads=DATABASE_THREADS) as basics,
        client_session(settings.http_concurrency) as http,
    ):
        app = make_worker(settings, basics.db, "http-delivery")
        deps = worker.Deps.of(basics.configs, app, http, basics.db, settings.record_patience)
        app.consume(Consumer.of(worker, deps, settings.http_concurrency))
        await app.run(stop, settings.shutdown_grace)


def main() -> None:
    worker_main("http_delivery", serve, queues=[worker.QUEUE])


if __name__ == "__main__":
    main()
