"""``leadflow console``: the operators' web application."""

from __future__ import annotations

from services.console.app import create_app
from shared.config import Settings
from shared.web import service_main


def main(settings: Settings | None = None) -> None:
    service_main("console", create_app, settings)


if __name__ == "__main__":
    main()
