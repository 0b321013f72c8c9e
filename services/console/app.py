"""The console aiohttp application: factory used by ``main()`` and by the tests.

Server-rendered pages (aiohttp-jinja2, autoescaped), one style sheet served from here,
no script: nothing comes from a third-party host.
"""

from __future__ import annotations

import logging
import secrets
from pathlib import Path

import aiohttp_jinja2
import jinja2
from aiohttp import web

from services.console import auth, operations, views
from shared import users
from shared.config import Settings
from shared.outbox import OutboxTable
from shared.web import create_service_app

HERE = Path(__file__).parent
logger = logging.getLogger(__name__)
MAX_FORM_BYTES = 64 * 1024


def _signer(settings: Settings) -> auth.Signer:
    if settings.console_secret:
        return auth.Signer(settings.console_secret.encode())
    logger.info("LEADFLOW_CONSOLE_SECRET is not set: sessions are signed with a key of this start")
    return auth.Signer(secrets.token_bytes(32))


def create_app(settings: Settings) -> web.Application:
    app = create_service_app(
        settings,
        service="console",
        max_body_bytes=MAX_FORM_BYTES,
        queues=[],
        pending=OutboxTable,
        openapi_document={"openapi": "3.1.0", "info": {"title": "console", "version": "1"}},
    )
    app[auth.SIGNER] = _signer(settings)
    app[auth.BRAKE] = auth.LoginBrake()

    async def person(user_id: str) -> users.Person | None:
        return await views.read(app, lambda session: users.get(session, user_id))

    app.middlewares.append(auth.middleware(person))  # type: ignore[arg-type]
    aiohttp_jinja2.setup(
        app,
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=jinja2.select_autoescape(default=True),
    )
    app.router.add_static("/static/", HERE / "static")
    app.router.add_get("/login", views.login_form)
    app.router.add_post("/login", views.login)
    app.router.add_post("/logout", views.logout)
    app.router.add_get("/", views.dashboard)
    app.router.add_get("/leads", views.leads)
    app.router.add_post("/leads", views.leads)
    app.router.add_get("/leads/{lead_id}", views.lead)
    app.router.add_get("/recipients", views.recipients)
    app.router.add_post("/recipients/{recipient_id}/{action:pause|resume}", views.switch_recipient)
    app.router.add_get("/returns", views.returns_page)
    app.router.add_post("/returns/{return_id}/{decision:approve|reject}", views.decide_return)
    app.router.add_get("/dead", operations.dead_letters)
    app.router.add_get("/dead/{message_id}", operations.dead_letter)
    app.router.add_post("/dead/{message_id}/{action:replay|purge}", operations.act_on_dead_letter)
    app.router.add_get("/manual", operations.manual)
    app.router.add_post("/manual/{recipient_id}/download", operations.manual_download)
    app.router.add_get("/reports", operations.reports_page)
    app.router.add_get("/flows", operations.flows)
    app.router.add_get("/flows/versions/{version}", operations.config_diff)
    return app
