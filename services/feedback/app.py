"""The feedback aiohttp application: factory used by ``main()`` and by the tests."""

from __future__ import annotations

from aiohttp import web

from services.feedback import views
from services.feedback.body import MAX_BODY_BYTES
from services.feedback.openapi import OPENAPI
from shared.config import Settings
from shared.messaging import FEEDBACK
from shared.web import create_service_app


def create_app(settings: Settings) -> web.Application:
    app = create_service_app(
        settings,
        service="feedback",
        max_body_bytes=MAX_BODY_BYTES,
        queues=[FEEDBACK],
        openapi_document=OPENAPI,
    )
    app.router.add_post("/feedback", views.post_feedback)
    return app
