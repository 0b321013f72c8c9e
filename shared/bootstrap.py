"""What every worker process sets up first: settings, logging, the database threads, the
configuration store and the worker (its broker connection and dead-letter mirror); and
``worker_main``, the one way a worker process runs."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import partial
from typing import NoReturn

from shared.config import Settings, load_settings
from shared.configstore import ConfigStore
from shared.db.engine import SessionFactory, make_engine, make_session_factory
from shared.db.outages import DATABASE_OUTAGES
from shared.db.threads import DatabaseThreads
from shared.deadletters import mirror_dead_letter
from shared.logs import setup_logging
from shared.messaging import ParkedMessage, Worker
from shared.messaging.runner import run_worker


@dataclass(frozen=True, slots=True)
class WorkerBasics:
    settings: Settings
    sessions: SessionFactory  # a small pool for the configuration store's own reads
    configs: ConfigStore
    db: DatabaseThreads  # the handlers' transactions, off the event loop


@asynccontextmanager
async def started(
    service: str, settings: Settings, *, db_threads: int
) -> AsyncIterator[WorkerBasics]:
    """``worker_basics``, its database threads closed when the worker is done."""
    basics = worker_basics(service, settings, db_threads=db_threads)
    try:
        yield basics
    finally:
        await basics.db.close()


def worker_main(
    service: str,
    serve: Callable[[Settings, asyncio.Event], Awaitable[None]],
    *,
    queues: Sequence[str],
) -> NoReturn:
    """Run a worker process: ``serve(settings, stop)`` until SIGTERM or SIGINT, with its
    queues' depths among its metrics; exits with the process's code. Logging is set up
    first, so even the metrics server's first words are lines of the configured format."""
    settings = load_settings()
    setup_logging(service, settings.log_format, settings.log_level)
    sys.exit(
        run_worker(
            partial(serve, settings),
            queues=queues,
            broker_url=settings.broker_url,
            metrics_port=settings.metrics_port,
        )
    )


def worker_basics(service: str, settings: Settings, *, db_threads: int) -> WorkerBasics:
    setup_logging(service, settings.log_format, settings.log_level)
    engine = make_engine(settings.database_url, pool_size=2, pre_ping=False)
    sessions = make_session_factory(engine)
    configs = ConfigStore(sessions, settings.config_refresh_seconds)
    db = DatabaseThreads(settings.database_url, db_threads, f"{service}-db")
    return WorkerBasics(settings, sessions, configs, db)


def make_worker(settings: Settings, db: DatabaseThreads, name: str) -> Worker:
    """A worker on the settings' broker: parked messages mirrored in the database, database
    outages retried as outages (never parked soon)."""

    async def mirror(parked: ParkedMessage) -> None:
        await db.transaction(mirror_dead_letter, parked)

    return Worker(
        settings.broker_url,
        queue_type=settings.queue_type,
        record_dead_letter=mirror,
        outage_errors=DATABASE_OUTAGES,
        name=name,
    )
