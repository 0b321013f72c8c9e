"""``leadflow intake``: the lead intake HTTP service."""

from __future__ import annotations

from services.intake.app import create_app
from shared.config import Settings, load_settings
from shared.logs import setup_logging
from shared.web import serve_app


def main(settings: Settings | None = None) -> None:
    settings = settings or load_settings()
    setup_logging("intake", settings.log_format, settings.log_level)
    serve_app(
        create_app(settings),
        host=settings.intake_host,
        port=settings.intake_port,
        service="intake",
    )


if __name__ == "__main__":
    main()
