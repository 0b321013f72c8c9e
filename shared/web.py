"""aiohttp plumbing both HTTP services share: typed state, the database and broker
contexts, operational routes (``/healthz``, ``/readyz``, ``/metrics``, ``/openapi.json``),
answers in the client's format, and one error middleware that maps every error to
``{"outcome": "error", "reason": ...}`` and a status."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from aiohttp import web
from prometheus_client import REGISTRY
from sqlalchemy import text

from shared.answers import JSON, NotAcceptable, negotiate, render
from shared.config import Settings, load_settings
from shared.configstore import ConfigStore
from shared.db.engine import SessionFactory, make_engine, make_session_factory
from shared.db.outages import DATABASE_OUTAGES
from shared.errors import NotFound
from shared.formats.bodies import BodyError
from shared.logs import setup_logging
from shared.messaging import AsyncBrokerClient, FlowReply
from shared.metrics import latest
from shared.outbox import OutboxDepthCollector, Pending, Relay

T = TypeVar("T")

SETTINGS = web.AppKey("settings", Settings)
FACTORY = web.AppKey("factory", SessionFactory)
EXECUTOR = web.AppKey("executor", ThreadPoolExecutor)
CONFIG = web.AppKey("config", ConfigStore)
CLIENT = web.AppKey("client", AsyncBrokerClient)
RELAY = web.AppKey("relay", Relay)
OPENAPI = web.AppKey("openapi", dict[str, Any])

ReplyHandlerFactory = Callable[[web.Application], Callable[[FlowReply], None]]
PendingFactory = Callable[[SessionFactory], Pending]
HousekeepingFactory = Callable[[web.Application], Callable[[], object]]


async def run_db(app: web.Application, fn: Callable[..., T], *args: Any) -> T:
    """Run blocking database work on the service's database threads."""
    return await asyncio.get_running_loop().run_in_executor(app[EXECUTOR], fn, *args)


def database_ctx(service: str) -> Callable[[web.Application], AsyncIterator[None]]:
    async def ctx(app: web.Application) -> AsyncIterator[None]:
        settings = app[SETTINGS]
        engine = make_engine(settings.database_url)
        app[FACTORY] = make_session_factory(engine)
        app[EXECUTOR] = ThreadPoolExecutor(max_workers=8, thread_name_prefix=f"{service}-db")
        app[CONFIG] = ConfigStore(app[FACTORY], settings.config_refresh_seconds)
        yield
        app[EXECUTOR].shutdown(wait=True)
        engine.dispose()

    return ctx


def broker_ctx(
    service: str,
    queues: Sequence[str],
    pending: PendingFactory,
    on_reply: ReplyHandlerFactory | None = None,
    housekeeping: HousekeepingFactory | None = None,
) -> Callable[[web.Application], AsyncIterator[None]]:
    """The broker connection and the relay of what the service committed; the relay is
    flushed at shutdown."""

    async def ctx(app: web.Application) -> AsyncIterator[None]:
        settings = app[SETTINGS]
        client = AsyncBrokerClient(
            settings.broker_url,
            queues=queues,
            on_reply=on_reply(app) if on_reply else None,
            queue_type=settings.queue_type,
        )
        app[CLIENT] = client
        client.start()
        await client.wait_connected(timeout=3.0)
        source = pending(app[FACTORY])
        depth = OutboxDepthCollector(source, service)
        REGISTRY.register(depth)
        relay = Relay(
            client,
            source,
            app[EXECUTOR],
            sweep_seconds=settings.outbox_sweep_seconds,
            housekeeping=housekeeping(app) if housekeeping else None,
        )
        app[RELAY] = relay
        task = asyncio.create_task(relay.run())
        yield
        await relay.flush()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        REGISTRY.unregister(depth)
        await client.close()

    return ctx


# how ``/healthz`` and ``/readyz`` are described in each service's OpenAPI document
OPERATIONAL_PATHS: dict[str, Any] = {
    "/healthz": {
        "get": {"summary": "The process is up", "responses": {"200": {"description": "up"}}}
    },
    "/readyz": {
        "get": {
            "summary": "The database and the broker are reachable",
            "responses": {"200": {"description": "ready"}, "503": {"description": "not ready"}},
        }
    },
}


async def healthz(_request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    """Ready when the database answers and the broker connection is up."""

    def ping() -> None:
        with request.app[FACTORY]() as session:
            session.execute(text("SELECT 1"))

    problems = []
    try:
        await run_db(request.app, ping)
    except Exception as exc:
        problems.append(f"database: {type(exc).__name__}")
    if not request.app[CLIENT].connected:
        problems.append("broker: not connected")
    return web.json_response(
        {"status": "unavailable" if problems else "ok", "problems": problems},
        status=503 if problems else 200,
    )


async def metrics(request: web.Request) -> web.Response:
    body, content_type = await run_db(request.app, latest)
    return web.Response(body=body, headers={"Content-Type": content_type})


async def openapi(request: web.Request) -> web.Response:
    return web.json_response(request.app[OPENAPI])


def create_service_app(
    settings: Settings,
    *,
    service: str,
    max_body_bytes: int,
    queues: Sequence[str],
    pending: PendingFactory,
    openapi_document: dict[str, Any],
    on_reply: ReplyHandlerFactory | None = None,
    housekeeping: HousekeepingFactory | None = None,
) -> web.Application:
    """An aiohttp service with its database, broker, outbox relay and operational routes;
    the caller adds its own routes and contexts."""
    app = web.Application(client_max_size=max_body_bytes, middlewares=[error_middleware])
    app[SETTINGS] = settings
    app[OPENAPI] = openapi_document
    app.cleanup_ctx.append(database_ctx(service))
    app.cleanup_ctx.append(broker_ctx(service, queues, pending, on_reply, housekeeping))
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/openapi.json", openapi)
    return app


def service_main(
    service: str,
    create_app: Callable[[Settings], web.Application],
    settings: Settings | None = None,
) -> None:
    """Run an HTTP service (intake, feedback) on the host and port its settings give."""
    settings = settings or load_settings()
    setup_logging(service, settings.log_format, settings.log_level)
    host = getattr(settings, f"{service}_host")
    port = getattr(settings, f"{service}_port")
    serve_app(create_app(settings), host=host, port=port, service=service)


def serve_app(app: web.Application, *, host: str, port: int, service: str) -> None:
    """Serve ``app`` until SIGTERM or SIGINT (either, once or twice, is one graceful stop:
    the listener closes, requests in hand are answered within a third of the shutdown
    grace, the contexts are cleaned up)."""
    grace = app[SETTINGS].shutdown_grace / 3

    async def serve() -> None:
        # the stop is wanted from the first moment: a SIGTERM while the contexts start
        # (waiting for the broker, say) stops the service cleanly once they have
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=grace)
        await runner.setup()
        try:
            if not stop.is_set():
                # Several copies on one host share the port (leadflow up --scale intake=2).
                await web.TCPSite(runner, host, port, reuse_port=True).start()
                logger.info("%s listening on %s:%d", service, host, port)
                await stop.wait()
        finally:
            await runner.cleanup()

    asyncio.run(serve())
    logger.info("%s stopped", service)


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
logger = logging.getLogger(__name__)
#: Answered 503 (the client may try again): the database unreachable, no configuration.
_UNAVAILABLE: tuple[type[BaseException], ...] = (*DATABASE_OUTAGES, NotFound)


def answer(data: dict[str, Any], media: str, *, status: int = 200) -> web.Response:
    body, content_type = render(data, media)
    response = web.Response(body=body, status=status)
    response.headers["Content-Type"] = content_type
    return response


def error_answer(request: web.Request, reason: str, status: int) -> web.Response:
    return answer({"outcome": "error", "reason": reason}, media_of(request), status=status)


def media_of(request: web.Request) -> str:
    """The client's answer format; JSON when its Accept names nothing we produce."""
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
        return error_answer(request, exc.reason, exc.status)
    except web.HTTPRequestEntityTooLarge as exc:
        return error_answer(request, f"Body too large: {exc.text}", 413)
    except web.HTTPMethodNotAllowed as exc:
        response = error_answer(request, f"Method {request.method} not allowed", 405)
        response.headers["Allow"] = ", ".join(sorted(exc.allowed_methods))
        return response
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return error_answer(request, exc.reason, exc.status)
    except _UNAVAILABLE as exc:
        logger.warning("answering 503: %s", exc)
        return error_answer(request, "Service unavailable, try again later", 503)
    except asyncio.CancelledError:
        raise
    except Exception:
        logger.exception("unexpected error in %s %s", request.method, request.path)
        return error_answer(request, "Internal error", 500)
