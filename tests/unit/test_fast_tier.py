"""The fast tier's rule (tests/unit/conftest.py): a unit test that reaches for the network or
a process fails, while SQLite files and asyncio's own socketpair still work."""

from __future__ import annotations

import asyncio
import socket
import sqlite3
import subprocess
import urllib.request
from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from tests.support.offline import Offline


def connect_to_rabbitmq() -> None:
    socket.create_connection(("127.0.0.1", 5672), timeout=1).close()


def connect_a_socket_by_hand() -> None:
    with socket.socket() as sock:
        sock.connect_ex(("127.0.0.1", 5432))


def connect_to_postgresql() -> None:
    psycopg.connect("postgresql://leadflow:leadflow@127.0.0.1:5432/postgres").close()


def reach_postgresql_over_its_unix_socket() -> None:
    with socket.socket(socket.AF_UNIX) as sock:
        sock.connect("/var/run/postgresql/.s.PGSQL.5432")


def send_an_http_request() -> None:
    urllib.request.urlopen("http://127.0.0.1:8080/healthz", timeout=1).close()


def start_an_http_server() -> None:
    async def serve() -> None:
        server = TestServer(web.Application())
        try:
            await server.start_server()
        finally:
            await server.close()

    asyncio.run(serve())


def start_a_process() -> None:
    subprocess.run(["true"], check=True)


@pytest.mark.parametrize(
    "attempt",
    [
        connect_to_rabbitmq,
        connect_a_socket_by_hand,
        connect_to_postgresql,
        reach_postgresql_over_its_unix_socket,
        send_an_http_request,
        start_an_http_server,
        start_a_process,
    ],
)
def test_a_unit_test_that_reaches_for_the_network_or_a_process_fails(
    offline: Offline, attempt: Callable[[], None]
) -> None:
    # when a unit test tries it, then the test fails and says where such a test belongs
    with pytest.raises(pytest.fail.Exception, match="move the test to tests/integration"):
        attempt()
    assert offline.tried
    offline.forgive()


def test_asyncio_and_sqlite_files_still_work(tmp_path: Path) -> None:
    # given an event loop (it wakes itself through a Unix socketpair)
    async def answer() -> int:
        await asyncio.sleep(0)
        return 42

    assert asyncio.run(answer()) == 42
    left, right = socket.socketpair()
    with left, right:
        left.sendall(b"ping")
        assert right.recv(4) == b"ping"

    # and an SQLite file in a temporary directory
    with sqlite3.connect(tmp_path / "embedded.db") as db:
        assert db.execute("SELECT 1").fetchone() == (1,)
    db.close()
