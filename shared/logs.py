"""Logging set-up: one line per event, with the lead and event ids; text or JSON lines."""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime

from shared.redact import url_without_password

_IDS = ("lead_id", "event_id")


class _ServiceFilter(logging.Filter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def filter(self, record: logging.LogRecord) -> bool:
        record.service = self.service
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "service": getattr(record, "service", ""),
            "logger": record.name,
            "msg": url_without_password(record.getMessage()),
        }
        for key in _IDS:  # always present (null on a line about no lead)
            entry[key] = getattr(record, key, None) or None
        if record.exc_info:
            entry["exc"] = url_without_password(self.formatException(record.exc_info))
        return json.dumps(entry, default=str)


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(service)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        text = url_without_password(super().format(record))
        ids = " ".join(f"{k}={getattr(record, k)}" for k in _IDS if getattr(record, k, None))
        if ids:
            first, sep, rest = text.partition("\n")
            text = f"{first} {ids}{sep}{rest}"
        return text


def setup_logging(service: str, log_format: str = "text", level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(_ServiceFilter(service))
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    for noisy in ("aiohttp.access", "urllib3", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # pika logs every socket error with a traceback; the client says what matters once.
    logging.getLogger("pika").setLevel(logging.CRITICAL)
