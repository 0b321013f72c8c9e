"""``leadflow email-delivery``: the email delivery worker and the batch scheduler.

SMTP is a blocking protocol here (smtplib), so the handler runs on
``LEADFLOW_EMAIL_CONCURRENCY`` threads beside the worker's event loop. The scheduler is a
thread of its own (one per process). Several schedulers are safe: each batch slot is
claimed once in the database. The thread holds nothing a sudden stop could lose: a claim
is one transaction, and a claimed batch whose message was not published yet is published
again by the next scheduler's sweep.
"""

from __future__ import annotations

import asyncio
import os
import sys
from functools import partial

from services.email_delivery import schedule, worker
from services.email_delivery.mailer import mailer_from_url
from shared.bootstrap import make_worker, worker_basics
from shared.config import Settings, load_settings
from shared.messaging import Consumer
from shared.messaging.runner import run_worker


async def serve(settings: Settings, stop: asyncio.Event) -> None:
    # The handler's threads and the scheduler use the pool of the database threads.
    basics = worker_basics("email_delivery", settings, db_threads=settings.email_concurrency + 2)
    app = make_worker(settings, basics.db, "email-delivery")
    publisher = app.thread_publisher()
    deps = worker.Deps(
        sessions=basics.db.sessions,
        configs=basics.configs,
        publisher=publisher,
        mailer=mailer_from_url(settings.email_url),
        patience=settings.record_patience,
    )
    app.consume(
        Consumer(
            worker.QUEUE,
            partial(worker.handle, deps=deps),
            partial(worker.on_exhausted, deps=deps),
            concurrency=settings.email_concurrency,
        )
    )
    scheduler_stop = None
    if os.environ.get("LEADFLOW_EMAIL_SCHEDULER", "1") != "0":
        scheduler = schedule.Scheduler(basics.db.sessions, basics.configs, publisher)
        scheduler_stop = schedule.start(scheduler)
    try:
        await app.run(stop, settings.shutdown_grace)
    finally:
        if scheduler_stop is not None:
            scheduler_stop.set()
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
