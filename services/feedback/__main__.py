"""``leadflow feedback``: the feedback HTTP service (returns and conversions)."""

from __future__ import annotations

from services.feedback.app import create_app
from shared.config import Settings
from shared.web import service_main


def main(settings: Settings | None = None) -> None:
    service_main("feedback", create_app, settings)


if __name__ == "__main__":
    main()
