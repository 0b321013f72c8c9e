"""``leadflow router``: the flow router's worker pool."""

from __future__ import annotations

import sys

from services.router import worker
from shared.bootstrap import worker_context
from shared.config import load_settings
from shared.messaging import BrokerPublisher, declare_handler
from shared.messaging.runner import run_worker_pool


def setup() -> None:
    """Called by dramatiq in each worker process: broker, collaborators, the handler."""
    ctx = worker_context("router")
    deps = worker.Deps(
        sessions=ctx.sessions, configs=ctx.configs, publisher=BrokerPublisher(ctx.broker)
    )
    declare_handler(ctx.broker, worker.QUEUE, lambda message: worker.handle(message, deps))


def main() -> None:
    settings = load_settings()
    sys.exit(
        run_worker_pool(
            "services.router.__main__:setup",
            queues=[worker.QUEUE],
            processes=1,
            threads=settings.router_threads,
            broker_url=settings.broker_url,
            metrics_port=settings.metrics_port,
        )
    )


if __name__ == "__main__":
    main()
