"""``leadflow feedback``: the feedback HTTP service (returns and conversions)."""

from __future__ import annotations

from services.feedback.app import create_app
from shared.config import Settings, load_settings
from shared.logs import setup_logging
from shared.web import serve_app


def main(settings: Settings | None = None) -> None:
    settings = settings or load_settings()
    setup_logging("feedback", settings.log_format, settings.log_level)
    serve_app(
        create_app(settings),
        host=settings.feedback_host,
        port=settings.feedback_port,
        service="feedback",
    )


if __name__ == "__main__":
    main()
