"""What every worker process sets up first: settings, logging, database, config, broker."""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

from shared.config import Settings, load_settings
from shared.configstore import ConfigStore
from shared.db.engine import SessionFactory, make_engine, make_session_factory
from shared.db.outages import DATABASE_OUTAGES
from shared.deadletters import record_dead_letter
from shared.logs import setup_logging
from shared.messaging import LeadflowBroker, make_broker


@dataclass(frozen=True, slots=True)
class WorkerContext:
    settings: Settings
    sessions: SessionFactory
    configs: ConfigStore
    broker: LeadflowBroker


@dataclass(frozen=True, slots=True)
class Basics:
    settings: Settings
    sessions: SessionFactory
    configs: ConfigStore


def worker_basics(service: str, *, pool_size: int = 10) -> Basics:
    """Settings, logging, the database and the configuration store (no broker)."""
    settings = load_settings()
    setup_logging(service, settings.log_format, settings.log_level)
    sessions = make_session_factory(
        make_engine(settings.database_url, pool_size=pool_size, pre_ping=False)
    )
    return Basics(settings, sessions, ConfigStore(sessions, settings.config_refresh_seconds))


def worker_context(service: str, *, pool_size: int = 10) -> WorkerContext:
    basics = worker_basics(service, pool_size=pool_size)
    settings, sessions, configs = basics.settings, basics.sessions, basics.configs
    broker = make_broker(
        settings.broker_url,
        record_dead_letter=partial(record_dead_letter, sessions),
        queue_type=settings.queue_type,
        outage_errors=DATABASE_OUTAGES,
    )
    return WorkerContext(settings=settings, sessions=sessions, configs=configs, broker=broker)
