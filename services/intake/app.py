"""The intake aiohttp application: factory used by ``main()`` and by the tests."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor

from aiohttp import web
from prometheus_client import REGISTRY

from services.intake import views
from services.intake.state import (
    CLIENT,
    CONFIG,
    EXECUTOR,
    FACTORY,
    RELAY,
    SETTINGS,
    WAITERS,
    WRITER,
)
from services.intake.store import LeadWriter
from shared.config import Settings
from shared.configstore import ConfigStore
from shared.db.engine import make_engine, make_session_factory
from shared.messaging import ROUTER, AsyncBrokerClient, FlowReply
from shared.outbox import OutboxDepthCollector, OutboxRelay
from shared.web import error_middleware

logger = logging.getLogger(__name__)


async def database_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    engine = make_engine(settings.database_url)
    app[FACTORY] = make_session_factory(engine)
    app[EXECUTOR] = ThreadPoolExecutor(max_workers=8, thread_name_prefix="intake-db")
    app[CONFIG] = ConfigStore(app[FACTORY], settings.config_refresh_seconds)
    depth = OutboxDepthCollector(app[FACTORY], "intake")
    REGISTRY.register(depth)
    yield
    REGISTRY.unregister(depth)
    app[EXECUTOR].shutdown(wait=True)
    engine.dispose()


async def broker_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    waiters = app[WAITERS]

    def on_reply(reply: FlowReply) -> None:
        future = waiters.get(reply.lead_id)
        if future is not None and not future.done():
            future.set_result(
                views.lead_answer(reply.lead_id, reply.outcome, reply.reason, reply.price)
            )

    client = AsyncBrokerClient(
        settings.broker_url, queues=[ROUTER], on_reply=on_reply, queue_type=settings.queue_type
    )
    app[CLIENT] = client
    client.start()
    await client.wait_connected(timeout=3.0)
    writer = LeadWriter(app[FACTORY], app[EXECUTOR])
    relay = OutboxRelay(
        client, app[FACTORY], app[EXECUTOR], sweep_seconds=settings.outbox_sweep_seconds
    )
    app[WRITER], app[RELAY] = writer, relay
    tasks = [asyncio.create_task(writer.run()), asyncio.create_task(relay.run())]
    yield
    await relay.flush()
    for task in tasks:
        task.cancel()
    for task in tasks:
        with contextlib.suppress(asyncio.CancelledError):
            await task
    await client.close()


def create_app(settings: Settings) -> web.Application:
    app = web.Application(client_max_size=settings.max_body_bytes, middlewares=[error_middleware])
    app[SETTINGS] = settings
    app[WAITERS] = {}
    app.cleanup_ctx.append(database_ctx)
    app.cleanup_ctx.append(broker_ctx)
    app.router.add_route("*", "/flows/{flow_id}/sources/{source_id}/submit", views.submit)
    app.router.add_get("/leads/{lead_id}", views.show_lead)
    app.router.add_get("/healthz", views.healthz)
    app.router.add_get("/readyz", views.readyz)
    app.router.add_get("/metrics", views.metrics)
    app.router.add_get("/openapi.json", views.openapi)
    return app
