"""No network and no process for a unit test: what tests/unit/conftest.py puts in place.

Python's socket module is the way in for asyncio's default loop, aiohttp, pika, smtplib and
urllib; psycopg is the one client here that connects below it (through libpq), so it is
refused by name. A Unix ``socketpair`` (asyncio's own wake-up channel) neither connects nor
binds, so it still works, and so does SQLite (an embedded file, no server)."""

from __future__ import annotations

import os
import socket
import subprocess
from collections.abc import Callable
from typing import NoReturn

import psycopg
import pytest

ADVICE = (
    "tests/unit is the fast tier (no broker, no database server, no network, no process): "
    "give the code a fake, or move the test to tests/integration"
)


class Offline:
    """Refuses sockets and processes until ``monkeypatch`` is undone; remembers what was
    tried, in case the code under test caught the failure."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.tried: list[str] = []
        for name in ("connect", "connect_ex"):
            monkeypatch.setattr(socket.socket, name, self._socket_refusal("to open a connection"))
        monkeypatch.setattr(socket.socket, "bind", self._socket_refusal("to bind a socket"))
        monkeypatch.setattr(socket, "create_connection", self._refusal("to open a connection"))
        monkeypatch.setattr(socket, "create_server", self._refusal("to start a server"))
        for owner in (psycopg, psycopg.Connection, psycopg.AsyncConnection):
            monkeypatch.setattr(owner, "connect", self._refusal("to connect to PostgreSQL"))
        monkeypatch.setattr(subprocess.Popen, "_execute_child", self._refusal("to start a process"))
        for name in ("fork", "forkpty", "system", "posix_spawn", "posix_spawnp"):
            monkeypatch.setattr(os, name, self._refusal(f"to start a process (os.{name})"))

    def forgive(self) -> None:
        """Forget what was tried (for the tests of this rule itself)."""
        self.tried.clear()

    def _refusal(self, what: str) -> Callable[..., NoReturn]:
        def refuse(*_args: object, **_kwargs: object) -> NoReturn:
            self.tried.append(what)
            pytest.fail(f"a unit test tried {what}; {ADVICE}")

        return refuse

    def _socket_refusal(self, what: str) -> Callable[..., NoReturn]:
        """As ``_refusal``, for a socket's own method: the socket is closed first (code that
        expected an OSError may leave it open, and its ResourceWarning would hide the cause)."""
        refuse = self._refusal(what)

        def close_and_refuse(sock: socket.socket, *_args: object, **_kwargs: object) -> NoReturn:
            sock.close()
            refuse()

        return close_and_refuse
