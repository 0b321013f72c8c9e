"""The intake aiohttp application: factory used by ``main()`` and by the tests."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor

from aiohttp import web
from sqlalchemy.exc import SQLAlchemyError

from services.intake import views
from services.intake.bodies import BodyError
from services.intake.state import (
    CLIENT,
    CONFIG,
    EXECUTOR,
    FACTORY,
    RELAY,
    SETTINGS,
    WAITERS,
    WRITER,
    answer,
)
from services.intake.store import LeadWriter
from shared.answers import JSON, NotAcceptable, negotiate
from shared.config import Settings
from shared.configstore import ConfigStore
from shared.db.engine import make_engine, make_session_factory
from shared.errors import NotFound
from shared.messaging import ROUTER, AsyncBrokerClient, FlowReply
from shared.outbox import OutboxRelay

logger = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _media(request: web.Request) -> str:
    try:
        return negotiate(request.headers.get("Accept"))
    except NotAcceptable:
        return JSON


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every error answers in the client's format with outcome ``error`` and a reason."""
    try:
        return await handler(request)
    except NotAcceptable:
        return answer(
            {
                "outcome": "error",
                "reason": "Not acceptable: use application/json, text/xml or text/plain",
            },
            JSON,
            status=406,
        )
    except BodyError as exc:
        return answer(
            {"outcome": "error", "reason": exc.reason}, _media(request), status=exc.status
        )
    except web.HTTPRequestEntityTooLarge:
        limit = request.app[SETTINGS].max_body_bytes
        return answer(
            {"outcome": "error", "reason": f"Body too large (limit {limit} bytes)"},
            _media(request),
            status=413,
        )
    except web.HTTPMethodNotAllowed as exc:
        response = answer(
            {"outcome": "error", "reason": f"Method {request.method} not allowed"},
            _media(request),
            status=405,
        )
        response.headers["Allow"] = ", ".join(sorted(exc.allowed_methods))
        return response
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return answer(
            {"outcome": "error", "reason": exc.reason}, _media(request), status=exc.status
        )
    except (SQLAlchemyError, NotFound) as exc:
        logger.warning("answering 503: %s", exc)
        return answer(
            {"outcome": "error", "reason": "Service unavailable, try again later"},
            _media(request),
            status=503,
        )
    except asyncio.CancelledError:
        raise
    except Exception:
        logger.exception("unexpected error in %s %s", request.method, request.path)
        return answer({"outcome": "error", "reason": "Internal error"}, _media(request), status=500)


async def database_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    engine = make_engine(settings.database_url)
    app[FACTORY] = make_session_factory(engine)
    app[EXECUTOR] = ThreadPoolExecutor(max_workers=8, thread_name_prefix="intake-db")
    app[CONFIG] = ConfigStore(app[FACTORY], settings.config_refresh_seconds)
    yield
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

    client = AsyncBrokerClient(settings.broker_url, queues=[ROUTER], on_reply=on_reply)
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
    return app
