"""``leadflow http-delivery``: the HTTP delivery worker, one asyncio process.

``LEADFLOW_HTTP_CONCURRENCY`` requests may be in flight at once (the prefetch window);
the database work runs on a few threads. Scale out with more copies of the command.
"""

from __future__ import annotations

import asyncio
import sys
from functools import partial

from services.http_delivery import forward_worker, worker
from services.http_delivery.send import client_session
from shared.bootstrap import worker_basics
from shared.config import load_settings
from shared.db.outages import DATABASE_OUTAGES
from shared.db.threads import DatabaseThreads
from shared.deadletters import mirror_dead_letter
from shared.messaging import ParkedMessage
from shared.messaging.aioworker import AsyncConsumer, AsyncWorker
from shared.messaging.runner import run_async_worker

#: Threads (one pooled connection each) for the short claim/record transactions.
DATABASE_THREADS = 16


async def serve(stop: asyncio.Event) -> None:
    # (The synchronous pool only backs the configuration store's own reads.)
    basics = worker_basics("http_delivery", pool_size=2)
    settings = basics.settings
    db = DatabaseThreads(settings.database_url, DATABASE_THREADS, "http-delivery-db")

    async def mirror(parked: ParkedMessage) -> None:
        await db.transaction(mirror_dead_letter, parked)

    async with client_session(settings.http_concurrency) as http:
        app = AsyncWorker(
            settings.broker_url,
            concurrency=settings.http_concurrency,
            queue_type=settings.queue_type,
            record_dead_letter=mirror,
            outage_errors=DATABASE_OUTAGES,
            name="http-delivery",
        )
        deps = worker.Deps(basics.configs, app.publish, http, db)
        forward_deps = forward_worker.Deps(basics.configs, http, db)
        app.consume(
            AsyncConsumer(
                worker.QUEUE,
                partial(worker.handle, deps=deps),
                partial(worker.on_exhausted, deps=deps),
            )
        )
        app.consume(
            AsyncConsumer(
                forward_worker.QUEUE,
                partial(forward_worker.handle, deps=forward_deps),
                partial(forward_worker.on_exhausted, deps=forward_deps),
            )
        )
        await app.run(stop)
    await db.close()


def main() -> None:
    import sys as _s

    _s.setswitchinterval(0.0005)
    settings = load_settings()
    sys.exit(
        run_async_worker(
            serve,
            queues=[worker.QUEUE, forward_worker.QUEUE],
            broker_url=settings.broker_url,
            metrics_port=settings.metrics_port,
        )
    )


if __name__ == "__main__":
    main()
