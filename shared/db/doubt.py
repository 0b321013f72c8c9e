"""Commits whose answer was lost: finding out whether they happened.

When the connection drops after ``COMMIT`` was sent, the commit may or may not have
happened; taking it for an outage would answer a source 503 for a lead that is stored,
or leave a worker waiting out the lease of its own claim. So the outcome is found out:

- on PostgreSQL, exactly: the transaction's id is read just before ``COMMIT``
  (``pg_current_xact_id_if_assigned``) and its status asked afterwards on a new
  connection (``pg_xact_status``: committed, aborted or in progress). While it is in
  progress, the old backend still holds it open (the ``COMMIT`` may yet arrive), so that
  backend is stopped (``pg_terminate_backend``), which settles it;
- elsewhere (SQLite, a local file), by reading whether what the transaction wrote is
  there (the caller's ``stored``).

The database may still be away; the outcome is then asked again, for up to
``RECORD_PATIENCE_SECONDS``, and stays unknown (None) after that.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from sqlalchemy import exc as sa_exc
from sqlalchemy import text
from sqlalchemy.orm import Session

from shared.db.outages import DATABASE_OUTAGES, RECORD_PATIENCE_SECONDS, Patience

T = TypeVar("T")
logger = logging.getLogger(__name__)

_TRANSACTION = text("SELECT pg_current_xact_id_if_assigned()::text, pg_backend_pid()")
_STATUS = text("SELECT pg_xact_status(CAST(:xid AS xid8))")
#: ``pg_xact_status`` of an id the server has not reached: the transaction ran on another
#: server (a standby was promoted). (A promoted standby may also have reused the id for
#: a transaction of its own; a probe does not tell servers apart.)
_XID_IN_THE_FUTURE = "22023"
_STOP_HOLDER = text(
    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
    "WHERE pid = :pid AND backend_xid::text = :short_xid"
)


@dataclass(frozen=True, slots=True)
class CommitProbe:
    """What is needed, before ``COMMIT``, to find out later whether it happened."""

    postgresql: bool
    xid: str | None = None  # None on PostgreSQL: the transaction wrote nothing
    pid: int | None = None

    @classmethod
    def take(cls, session: Session) -> CommitProbe:
        if session.get_bind().dialect.name != "postgresql":
            return cls(postgresql=False)
        xid, pid = session.execute(_TRANSACTION).one()
        return cls(postgresql=True, xid=xid, pid=pid)

    def outcome(self, session: Session, stored: Callable[[Session], bool]) -> bool | None:
        """True: it happened; False: it did not; None: not known yet (asked on ``session``,
        a new one; raises an outage while the database is away)."""
        if not self.postgresql:
            return stored(session)
        if self.xid is None:
            return True  # nothing was written: nothing to lose
        try:
            status = session.scalar(_STATUS, {"xid": self.xid})
        except sa_exc.DBAPIError as exc:
            if getattr(exc.orig, "sqlstate", None) != _XID_IN_THE_FUTURE:
                raise
            # Another server now (a standby promoted): its ids are not this one's.
            session.rollback()
            return stored(session)
        if status == "committed":
            return True
        if status == "aborted":
            return False
        if status is None:  # too old to be known (never, seconds later): read instead
            return stored(session)
        session.execute(_STOP_HOLDER, {"pid": self.pid, "short_xid": str(int(self.xid) % 2**32)})
        session.rollback()
        return None


def find_out(
    probe: CommitProbe,
    factory: Callable[[], Session],
    stored: Callable[[Session], bool],
    *,
    ids: dict[str, str] | None = None,
    patience: float = RECORD_PATIENCE_SECONDS,
    sleep: Callable[[float], None] = time.sleep,
) -> bool | None:
    """Whether the commit ``probe`` was taken for happened, asked until it is known or
    ``patience`` seconds have passed (then None)."""
    waits = Patience(patience)
    while True:
        try:
            with factory() as session:
                known = probe.outcome(session, stored)
            if known is not None:
                return known
            reason = "its transaction is still open on the old connection (stopped)"
        except DATABASE_OUTAGES as exc:
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        wait = waits.next_wait()
        if wait is None:
            return None
        logger.warning(
            "whether a commit happened is not known yet (%s); asking again in %.2g s",
            reason,
            wait,
            extra=ids or {},
        )
        sleep(wait)


def commit_or_find_out(
    session: Session,
    stored: Callable[[Session], bool],
    *,
    factory: Callable[[], Session],
    ids: dict[str, str] | None = None,
    patience: float = RECORD_PATIENCE_SECONDS,
) -> bool:
    """``session.commit()``; when it fails on a lost connection, whether it happened is
    found out. Returns False if it committed normally, True if it was found out to have
    happened; raises the outage if it did not happen or that cannot be known."""
    probe = CommitProbe.take(session)
    try:
        session.commit()
        return False
    except DATABASE_OUTAGES as exc:
        logger.warning(
            "the answer to a commit was lost (%s); finding out whether it happened",
            str(exc).splitlines()[0] if str(exc) else type(exc).__name__,
            extra=ids or {},
        )
        happened = find_out(probe, factory, stored, ids=ids, patience=patience)
        if happened is None:
            logger.error("whether the commit happened stays unknown", extra=ids or {})
            raise exc from None
        if not happened:
            logger.info("the commit had not happened", extra=ids or {})
            raise
        logger.info("the commit had happened", extra=ids or {})
        return True


def transaction_or_find_out(
    factory: Callable[[], Session],
    work: Callable[[Session], T],
    stored: Callable[[Session, T], bool],
    *,
    renew: Callable[[Session, T], T] | None = None,
    ids: dict[str, str] | None = None,
    patience: float = RECORD_PATIENCE_SECONDS,
) -> T:
    """``work(session)`` in one transaction, committed with ``commit_or_find_out``
    (``stored(session, result)`` reads whether what ``work`` wrote is there, where the
    transaction's status cannot be asked). For work that must not be done twice, like
    claiming a delivery or taking a return. When the commit had to be found out (which
    took time), ``renew(session, result)`` runs in a new transaction: a claim's lease is
    stamped afresh, say."""
    with factory() as session:
        session.begin()
        try:
            session.connection(execution_options={"sqlite_immediate": True})
            result = work(session)
        except BaseException:
            session.rollback()
            raise
        found_out = commit_or_find_out(
            session,
            lambda reader: stored(reader, result),
            factory=factory,
            ids=ids,
            patience=patience,
        )
    if found_out and renew is not None:
        with factory() as session, session.begin():
            session.connection(execution_options={"sqlite_immediate": True})
            result = renew(session, result)
    return result
