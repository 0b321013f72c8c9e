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

from services.email_delivery import schedule, worker
from services.email_delivery.mailer import mailer_from_url
from shared.bootstrap import make_worker, started, worker_main
from shared.config import Settings
from shared.messaging import Consumer


async def serve(settings: Settings, stop: asyncio.Event) -> None:
    # The handler's threads and the scheduler use the pool of the database threads.
    threads = settings.email_concurrency + 2
    async with started("email_delivery", settings, db_threads=threads) as basics:
        app = make_worker(settings, basics.db, "email-delivery")
        publisher = app.thread_publisher()
        deps = worker.Deps(
            sessions=basics.db.sessions,
            configs=basics.configs,
            publisher=publisher,
            mailer=mailer_from_url(settings.email_url),
            patience=settings.record_patience,
        )
        app.consume(Consumer.of(worker, deps, settings.email_concurrency))
        scheduler = schedule.Scheduler(basics.db.sessions, basics.configs, publisher)
        scheduler.start()
        try:
            await app.run(stop, settings.shutdown_grace)
        finally:
            await asyncio.to_thread(scheduler.stop, settings.shutdown_grace / 3)


def main() -> None:
    worker_main("email_delivery", serve, queues=[worker.QUEUE])


if __name__ == "__main__":
    main()
