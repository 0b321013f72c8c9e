"""``leadflow http-delivery``: the HTTP delivery worker pool."""

from __future__ import annotations

import os
import sys

from services.http_delivery import forward_worker, worker
from services.http_delivery.send import Sessions
from shared.bootstrap import worker_context
from shared.config import load_settings
from shared.messaging import BrokerPublisher, declare_handler
from shared.messaging.runner import run_worker_pool


def setup() -> None:
    """Called by dramatiq in each worker process: broker, collaborators, the handlers."""
    ctx = worker_context("http_delivery", pool_size=16)
    http = Sessions()
    deps = worker.Deps(
        sessions=ctx.sessions,
        configs=ctx.configs,
        publisher=BrokerPublisher(ctx.broker),
        http=http,
    )
    declare_handler(
        ctx.broker,
        worker.QUEUE,
        lambda m: worker.handle(m, deps),
        on_exhausted=lambda m, reason: worker.on_exhausted(m, reason, deps),
    )
    forward_deps = forward_worker.Deps(sessions=ctx.sessions, configs=ctx.configs, http=http)
    declare_handler(
        ctx.broker,
        forward_worker.QUEUE,
        lambda m: forward_worker.handle(m, forward_deps),
        on_exhausted=lambda m, reason: forward_worker.on_exhausted(m, reason, forward_deps),
    )


def main() -> None:
    settings = load_settings()
    processes = int(os.environ.get("LEADFLOW_HTTP_PROCESSES", "1"))
    sys.exit(
        run_worker_pool(
            "services.http_delivery.__main__:setup",
            queues=[worker.QUEUE, forward_worker.QUEUE],
            processes=processes,
            threads=settings.http_concurrency,
            broker_url=settings.broker_url,
            metrics_port=settings.metrics_port,
        )
    )


if __name__ == "__main__":
    main()
