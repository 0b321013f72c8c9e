"""A real database whose next commit can lose its answer (the connection dropped after
COMMIT was sent), and which can stay unreachable for a while."""

from __future__ import annotations

import threading
from typing import Any

from sqlalchemy import event
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from shared.db.engine import make_engine


def lost_connection() -> OperationalError:
    return OperationalError("COMMIT", {}, Exception("server closed the connection unexpectedly"))


class Database:
    """A real database whose next commit can lose its answer and which can go away."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = engine = make_engine(url)
        self.down = False
        # "stored" or "not stored", then the commit's answer is lost
        self.next_commit: str | None = None
        self.factory: sessionmaker[Session] = sessionmaker(engine, expire_on_commit=False)
        event.listen(engine, "before_cursor_execute", self._refuse_while_down)
        event.listen(engine, "commit", self._commit)

    def lose_next_commit(self, happens: str, *, back_after: float | None = None) -> None:
        """The next commit ``happens`` ("stored", "not stored") and its answer is lost;
        the database is away from then on, until ``back_after`` seconds from now (if
        given) or ``come_back``."""
        self.next_commit = happens
        if back_after is not None:
            threading.Timer(back_after, self.come_back).start()

    def come_back(self) -> None:
        self.down = False

    def _commit(self, connection: Any) -> None:
        happens, self.next_commit = self.next_commit, None
        if happens is None:
            return
        dbapi = connection.connection.dbapi_connection
        if happens == "stored":
            dbapi.commit()
        else:
            dbapi.rollback()
        self.down = True
        raise lost_connection()

    def _refuse_while_down(self, *_args: Any) -> None:
        if self.down:
            raise lost_connection()
