"""The feedback aiohttp application: factory used by ``main()`` and by the tests.

Besides the HTTP routes, the process forwards accepted feedback to the lead's source:
it consumes the ``feedback`` queue (``services.feedback.consumer``) on the one worker
runtime, started and stopped with the app.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from aiohttp import web

from services.feedback import consumer, views
from services.feedback.body import MAX_BODY_BYTES
from services.feedback.openapi import OPENAPI
from shared.bootstrap import make_worker
from shared.config import Settings
from shared.db.threads import DatabaseThreads
from shared.messaging import FEEDBACK, Consumer
from shared.outbound.send import client_session
from shared.outbox import OutboxTable
from shared.web import CONFIG, SETTINGS, create_service_app

#: Forwards in flight at once (sources answer in well under a second).
FORWARD_CONCURRENCY = 32


async def forwarding_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    db = DatabaseThreads(settings.database_url, 4, "feedback-forward-db")
    stop = asyncio.Event()
    async with client_session(FORWARD_CONCURRENCY) as http:
        worker = make_worker(settings, db, "feedback-forwarder")
        deps = consumer.Deps(app[CONFIG], http, db)
        worker.consume(Consumer.of(consumer, deps, FORWARD_CONCURRENCY))
        running = asyncio.create_task(worker.run(stop, settings.shutdown_grace / 3, embedded=True))
        yield
        stop.set()
        await running
    await db.close()


def create_app(settings: Settings, *, forwarding: bool = True) -> web.Application:
    app = create_service_app(
        settings,
        service="feedback",
        max_body_bytes=MAX_BODY_BYTES,
        queues=[FEEDBACK],
        pending=OutboxTable,
        openapi_document=OPENAPI,
    )
    if forwarding:
        app.cleanup_ctx.append(forwarding_ctx)
    app.router.add_post("/feedback", views.post_feedback)
    return app
