"""``leadflow intake``: the lead intake HTTP service."""

from __future__ import annotations

from services.intake.app import create_app
from shared.config import Settings
from shared.web import service_main


def main(settings: Settings | None = None) -> None:
    service_main("intake", create_app, settings)


if __name__ == "__main__":
    main()
