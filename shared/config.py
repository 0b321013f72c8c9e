"""Runtime settings: one typed object, read once from the environment, defaults in one place."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, replace
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from shared.errors import SettingsError
from shared.redact import url_without_password


@dataclass(frozen=True, slots=True)
class Settings:
    broker_url: str = "amqp://guest:guest@127.0.0.1:5672/%2F"
    database_url: str = "sqlite:///var/leadflow.db"
    email_url: str = "maildir://var/mail"
    intake_port: int = 8080
    feedback_port: int = 8081
    console_port: int = 8082
    intake_host: str = "0.0.0.0"
    feedback_host: str = "0.0.0.0"
    console_host: str = "0.0.0.0"
    #: Signs the console's session cookies; empty: a random key per start (every session
    #: ends when the console restarts, and copies behind one address disagree).
    console_secret: str = ""
    log_format: str = "text"
    log_level: str = "INFO"
    metrics_port: int | None = 9100  # workers only; 0 turns it off
    http_concurrency: int = 256
    email_concurrency: int = 8
    max_body_bytes: int = 1024 * 1024
    outbox_sweep_seconds: float = 5.0
    config_refresh_seconds: float = 1.0
    queue_type: str = "classic"
    timezone: str = "UTC"  # windows of time where the config names no zone; reports' days
    #: Seconds a stopping worker may take to finish what it holds (SIGTERM to exit).
    shutdown_grace: float = 30.0

    @property
    def record_patience(self) -> float:
        """How long a worker keeps trying to record what already happened elsewhere (an
        answer it got, an email the server took) through a database outage: two thirds of
        the shutdown grace, so a stopping worker still has time to finish it."""
        return self.shutdown_grace * 2 / 3


_ENV = {
    "broker_url": "LEADFLOW_BROKER_URL",
    "database_url": "LEADFLOW_DATABASE_URL",
    "email_url": "LEADFLOW_EMAIL_URL",
    "intake_port": "LEADFLOW_INTAKE_PORT",
    "feedback_port": "LEADFLOW_FEEDBACK_PORT",
    "console_port": "LEADFLOW_CONSOLE_PORT",
    "console_host": "LEADFLOW_CONSOLE_HOST",
    "console_secret": "LEADFLOW_CONSOLE_SECRET",
    "intake_host": "LEADFLOW_INTAKE_HOST",
    "feedback_host": "LEADFLOW_FEEDBACK_HOST",
    "log_format": "LEADFLOW_LOG_FORMAT",
    "log_level": "LEADFLOW_LOG_LEVEL",
    "metrics_port": "LEADFLOW_METRICS_PORT",
    "http_concurrency": "LEADFLOW_HTTP_CONCURRENCY",
    "email_concurrency": "LEADFLOW_EMAIL_CONCURRENCY",
    "max_body_bytes": "LEADFLOW_MAX_BODY_BYTES",
    "outbox_sweep_seconds": "LEADFLOW_OUTBOX_SWEEP_SECONDS",
    "config_refresh_seconds": "LEADFLOW_CONFIG_REFRESH_SECONDS",
    "queue_type": "LEADFLOW_QUEUE_TYPE",
    "timezone": "LEADFLOW_TIMEZONE",
    "shutdown_grace": "LEADFLOW_SHUTDOWN_GRACE",
}


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Build the settings from the environment; a bad value fails fast with the variable's name."""
    env = os.environ if environ is None else environ
    defaults = Settings()
    values: dict[str, object] = {}
    for name, var in _ENV.items():
        text = env.get(var)
        if text is None or text == "":
            continue
        default = getattr(defaults, name)
        try:
            if name == "metrics_port" or isinstance(default, int):
                number = int(text)
                if number < 0:
                    raise ValueError("must not be negative")
                values[name] = number
            elif isinstance(default, float):
                values[name] = float(text)
            else:
                values[name] = text
        except ValueError as exc:
            raise SettingsError(f"{var}={url_without_password(text)!r}: {exc}") from None
    settings = replace(defaults, **values)  # type: ignore[arg-type]
    _check(settings)
    return settings


def known_zone(name: str) -> bool:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


def _check(settings: Settings) -> None:
    if settings.log_format not in ("text", "json"):
        raise SettingsError(f"LEADFLOW_LOG_FORMAT={settings.log_format!r}: use 'text' or 'json'")
    if urlsplit(settings.broker_url).scheme not in ("amqp", "amqps"):
        raise SettingsError(
            f"LEADFLOW_BROKER_URL={url_without_password(settings.broker_url)!r}: "
            "must be amqp:// or amqps://"
        )
    scheme = urlsplit(settings.email_url).scheme
    if scheme not in ("maildir", "smtp", "smtps"):
        raise SettingsError(
            f"LEADFLOW_EMAIL_URL={url_without_password(settings.email_url)!r}: "
            "use maildir://PATH or smtp://host:port"
        )
    if not known_zone(settings.timezone):
        raise SettingsError(
            f"LEADFLOW_TIMEZONE={settings.timezone!r}: unknown time zone "
            "(use a name of the zone database: UTC, America/Chicago, Europe/Paris)"
        )
    if settings.queue_type not in ("classic", "quorum"):
        raise SettingsError(f"LEADFLOW_QUEUE_TYPE={settings.queue_type!r}: use classic or quorum")
    if settings.http_concurrency < 1:
        raise SettingsError("LEADFLOW_HTTP_CONCURRENCY must be at least 1")
