"""``leadflow email-delivery``: the email delivery worker pool and the batch scheduler.

The scheduler is a daemon thread in each worker process (one per process, so one per
``leadflow email-delivery`` with the default single process). Several schedulers are
safe: each batch slot is claimed once in the database. The thread holds nothing a
sudden stop could lose: a claim is one transaction, and a claimed batch whose message
was not published yet is published again by the next scheduler's sweep.
"""

from __future__ import annotations

import os
import sys

from services.email_delivery import schedule, worker
from services.email_delivery.mailer import mailer_from_url
from shared.bootstrap import worker_context
from shared.config import load_settings
from shared.messaging import BrokerPublisher, declare_handler
from shared.messaging.runner import run_worker_pool


def setup() -> None:
    """Called by dramatiq in each worker process: broker, collaborators, handler, scheduler."""
    ctx = worker_context("email_delivery")
    publisher = BrokerPublisher(ctx.broker)
    deps = worker.Deps(
        sessions=ctx.sessions,
        configs=ctx.configs,
        publisher=publisher,
        mailer=mailer_from_url(ctx.settings.email_url),
    )
    declare_handler(
        ctx.broker,
        worker.QUEUE,
        lambda m: worker.handle(m, deps),
        on_exhausted=lambda m, reason: worker.on_exhausted(m, reason, deps),
    )
    if os.environ.get("LEADFLOW_EMAIL_SCHEDULER", "1") != "0":
        schedule.start(schedule.Scheduler(ctx.sessions, ctx.configs, publisher))


def main() -> None:
    settings = load_settings()
    processes = int(os.environ.get("LEADFLOW_EMAIL_PROCESSES", "1"))
    sys.exit(
        run_worker_pool(
            "services.email_delivery.__main__:setup",
            queues=[worker.QUEUE],
            processes=processes,
            threads=settings.email_concurrency,
            broker_url=settings.broker_url,
            metrics_port=settings.metrics_port,
        )
    )


if __name__ == "__main__":
    main()
