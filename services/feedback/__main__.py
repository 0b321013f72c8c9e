"""``leadflow feedback``: the feedback HTTP service (returns and conversions)."""

from __future__ import annotations

from aiohttp import web

from services.feedback.app import create_app
from shared.config import Settings, load_settings
from shared.logs import setup_logging


def main(settings: Settings | None = None) -> None:
    settings = settings or load_settings()
    setup_logging("feedback", settings.log_format, settings.log_level)
    web.run_app(
        create_app(settings),
        host=settings.feedback_host,
        port=settings.feedback_port,
        print=None,
        access_log=None,
        shutdown_timeout=10,
        reuse_port=True,  # several copies on one host share the port (leadflow up --scale)
    )


if __name__ == "__main__":
    main()
