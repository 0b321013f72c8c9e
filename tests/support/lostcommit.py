"""A real database whose next commit can lose its answer (the connection dropped after
COMMIT was sent), and which can stay unreachable for a while."""

from __future__ import annotations

import threading
from typing import Any

from sqlalchemy import Engine, event, func, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from shared.db.engine import make_engine
from shared.db.models import Event, Lead, OutboxMessage


def lost_connection() -> OperationalError:
    return OperationalError("COMMIT", {}, Exception("server closed the connection unexpectedly"))


class Database:
    """A real database whose next commit can lose its answer and which can go away."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = engine = make_engine(url)
        self.down = False
        # "stored", "not stored" or "never sent" (left open on its connection), then the
        # commit's answer is lost
        self.next_commit: str | None = None
        database = self

        class AnswerLosingSession(Session):
            def commit(self) -> None:
                happens, database.next_commit = database.next_commit, None
                if happens is None:
                    super().commit()
                    return
                if happens == "stored":
                    super().commit()
                elif happens == "not stored":
                    self.rollback()
                database.down = True
                raise lost_connection()

        self.factory: sessionmaker[Session] = sessionmaker(
            engine, class_=AnswerLosingSession, expire_on_commit=False
        )
        event.listen(engine, "before_cursor_execute", self._refuse_while_down)

    def lose_next_commit(self, happens: str, *, back_after: float | None = None) -> None:
        """The next commit ``happens`` ("stored", "not stored", "never sent") and its answer
        is lost; the database is away from then on, until ``back_after`` seconds from now
        (if given) or ``come_back``."""
        self.next_commit = happens
        if back_after is not None:
            threading.Timer(back_after, self.come_back).start()

    def come_back(self) -> None:
        self.down = False

    def _refuse_while_down(self, *_args: Any) -> None:
        if self.down:
            raise lost_connection()

    def count(self, model: type[Lead] | type[Event], lead_ids: list[str]) -> int:
        """Rows of ``lead_ids`` in leads or events."""
        column = model.id if model is Lead else Event.lead_id
        with Session(self.engine) as session:
            return session.scalar(select(func.count()).where(column.in_(lead_ids))) or 0

    def outbox_rows(self, engine: Engine | None = None) -> int:
        """Every outbox row (the table is this database's alone), read through ``engine``
        (another process's connections) or this database's own."""
        with Session(engine or self.engine) as session:
            return session.scalar(select(func.count()).select_from(OutboxMessage)) or 0
