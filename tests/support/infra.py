"""Real infrastructure for integration and end-to-end tests: a RabbitMQ vhost per run,
a database per run (SQLite, or PostgreSQL when LEADFLOW_TEST_DATABASE_URL is set)."""

from __future__ import annotations

import contextlib
import os
import secrets
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from urllib.parse import quote

import psycopg

#: The PostgreSQL server `make test` starts, for the tests that need PostgreSQL itself.
POSTGRES_URL = os.environ.get(
    "LEADFLOW_TEST_POSTGRES_URL", "postgresql+psycopg://leadflow:leadflow@127.0.0.1:5432/postgres"
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(
    condition: Callable[[], object],
    timeout: float = 30.0,
    interval: float = 0.05,
    message: str = "condition",
) -> object:
    """Poll ``condition`` until it returns something truthy; fail after ``timeout``."""
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
        with psycopg.connect(_libpq(base), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
