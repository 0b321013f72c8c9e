"""Real infrastructure for integration and end-to-end tests: a RabbitMQ vhost per run,
a database per run (SQLite, or PostgreSQL when LEADFLOW_TEST_DATABASE_URL is set)."""

from __future__ import annotations

import contextlib
import os
import random
import secrets
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar
from urllib.parse import quote

import psycopg

#: The PostgreSQL server `make test` starts, for the tests that need PostgreSQL itself.
POSTGRES_URL = os.environ.get(
    "LEADFLOW_TEST_POSTGRES_URL", "postgresql+psycopg://leadflow:leadflow@127.0.0.1:5432/postgres"
)


def _ephemeral_ports() -> range:
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return range(int(low), int(high) + 1)
    except (OSError, ValueError):
        return range(32768, 61000)


#: Ports a test may take: below the kernel's ephemeral range, so no outgoing connection
#: (a client's own source port) takes a port between choosing it and binding it.
_PORTS = range(20000, min(32768, _ephemeral_ports().start))
_RANDOM = random.SystemRandom()

T = TypeVar("T")


def free_port() -> int:
    """A port nothing listens on, for a server a test starts (and names in its config)."""
    for _ in range(200):
        port = _RANDOM.choice(_PORTS)  # (not ``random``: the test run reseeds it per test)
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in {_PORTS}")


def free_port_block(count: int) -> int:
    """The first of ``count`` consecutive free ports (``leadflow up`` numbers its workers'
    metrics ports from a base)."""
    for _ in range(200):
        base = _RANDOM.choice(_PORTS[: -count or None])
        with contextlib.ExitStack() as held:
            try:
                for port in range(base, base + count):
                    sock = held.enter_context(socket.socket())
                    sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return base
    raise RuntimeError(f"no {count} free consecutive ports in {_PORTS}")


def own_stack_env(broker_url: str, database_url: str) -> dict[str, str]:
    """The variables that give a stack of its own its broker, its database and free ports
    for its intake, feedback and console."""
    return {
        "LEADFLOW_BROKER_URL": broker_url,
        "LEADFLOW_DATABASE_URL": database_url,
        "LEADFLOW_INTAKE_PORT": str(free_port()),
        "LEADFLOW_FEEDBACK_PORT": str(free_port()),
        "LEADFLOW_CONSOLE_PORT": str(free_port()),
    }


def wait_for(
    condition: Callable[[], T | None],
    timeout: float = 30.0,
    interval: float = 0.05,
    message: str = "condition",
) -> T:
    """Poll ``condition`` until it returns something truthy, and return that; fail after
    ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {message}")
        time.sleep(interval)


def rabbitmqctl(*args: str) -> str:
    result = subprocess.run(
        ["rabbitmqctl", "-q", *args], capture_output=True, text=True, timeout=60, check=True
    )
    return result.stdout


@contextlib.contextmanager
def rabbit_vhost() -> Iterator[str]:
    vhost = f"leadflow-test-{secrets.token_hex(4)}"
    rabbitmqctl("add_vhost", vhost)
    rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
    try:
        yield f"amqp://guest:guest@127.0.0.1:5672/{quote(vhost, safe='')}"
    finally:
        with contextlib.suppress(subprocess.SubprocessError):
            rabbitmqctl("delete_vhost", vhost)


def _libpq(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://")


@contextlib.contextmanager
def fresh_database(tmp_dir: str, base: str | None = None) -> Iterator[str]:
    """A fresh database for this run (SQLite, or PostgreSQL when a base URL is set by
    ``base`` or LEADFLOW_TEST_DATABASE_URL); dropped afterwards."""
    base = base or os.environ.get("LEADFLOW_TEST_DATABASE_URL")
    if not base:
        yield f"sqlite:///{tmp_dir}/leadflow-test.db"
        return
    name = f"leadflow_test_{secrets.token_hex(4)}"
    with psycopg.connect(_libpq(base), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = base.rsplit("/", 1)[0] + f"/{name}"
    try:
        yield url
    finally:
        _drop(base, name)


def _drop(base: str, name: str, attempts: int = 5) -> None:
    """Drop a test database; a backend PostgreSQL itself runs there (autovacuum) cannot be
    terminated by the test role, so a moment later it is tried again."""
    for attempt in range(attempts):
        try:
            with psycopg.connect(_libpq(base), autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            return
        except psycopg.errors.InsufficientPrivilege:
            if attempt == attempts - 1:
                raise
            time.sleep(0.5)
