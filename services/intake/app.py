"""The intake aiohttp application: factory used by ``main()`` and by the tests."""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import AsyncIterator, Callable

from aiohttp import web

from services.intake import pings, views
from services.intake.openapi import OPENAPI
from services.intake.state import LATEST_CONFIG, WAITERS, WRITER, LatestConfig
from services.intake.store import LeadWriter
from shared import resubmits
from shared.config import Settings
from shared.db.engine import make_engine, make_session_factory, transaction, utcnow
from shared.messaging import ROUTER, FlowReply
from shared.outbox import OutboxTable
from shared.web import CONFIG, EXECUTOR, FACTORY, RELAY, SETTINGS, create_service_app, run_db


def reply_handler(app: web.Application) -> Callable[[FlowReply], None]:
    """Answers from the router wake the request waiting on that lead (after_flow mode)."""
    waiters = app[WAITERS]

    def on_reply(reply: FlowReply) -> None:
        future = waiters.get(reply.lead_id)
        if future is not None and not future.done():
            future.set_result(
                views.lead_answer(reply.lead_id, reply.outcome, reply.reason, reply.price)
            )

    return on_reply


async def latest_config_ctx(app: web.Application) -> AsyncIterator[None]:
    configs = app[CONFIG]
    app[LATEST_CONFIG] = LatestConfig(
        configs.cached_latest, functools.partial(run_db, app, configs.latest)
    )
    yield


async def writer_ctx(app: web.Application) -> AsyncIterator[None]:
    """The group-commit writer, on a connection of its own without a ping before each
    transaction (a stale connection fails the batch: its sources are told 503 and send it
    again, a resubmission if the commit had happened)."""
    engine = make_engine(app[SETTINGS].database_url, pool_size=1, pre_ping=False)
    writer = LeadWriter(make_session_factory(engine), app[EXECUTOR], app[CONFIG].get, app[RELAY])
    app[WRITER] = writer
    task = asyncio.create_task(writer.run())
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    engine.dispose()


PRUNE_LIMIT = 5000
PRUNE_ROUNDS = 20


def pruning(app: web.Application) -> Callable[[], object]:
    """Forget expired keys (resubmission and duplicate keys) at every sweep of the relay:
    a few thousand a transaction, until none is left (keys expire as fast as they came)."""

    def prune() -> int:
        total = 0
        for _ in range(PRUNE_ROUNDS):
            with transaction(app[FACTORY]) as session:
                pruned = resubmits.prune(session.connection(), utcnow(), PRUNE_LIMIT)
            total += pruned
            if pruned < PRUNE_LIMIT:
                break
        return total

    return prune


def create_app(settings: Settings) -> web.Application:
    app = create_service_app(
        settings,
        service="intake",
        max_body_bytes=settings.max_body_bytes,
        queues=[ROUTER],
        pending=OutboxTable,
        openapi_document=OPENAPI,
        on_reply=reply_handler,
        housekeeping=pruning,
    )
    app[WAITERS] = {}
    app.cleanup_ctx.append(latest_config_ctx)
    app.cleanup_ctx.append(writer_ctx)
    app.cleanup_ctx.append(pings.ping_ctx)
    app.router.add_route("*", "/flows/{flow_id}/sources/{source_id}/ping", pings.ping)
    app.router.add_route("*", "/flows/{flow_id}/sources/{source_id}/submit", views.submit)
    app.router.add_get("/leads/{lead_id}", views.show_lead)
    return app
