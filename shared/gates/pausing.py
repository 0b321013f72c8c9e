"""Pausing (SPEC section 13): an operator's switch on a recipient, kept in the database
(``recipient_states``), not in the YAML. A paused recipient's steps are skipped with
reason ``Paused``; routing reads the paused set once per transaction."""

from __future__ import annotations

from sqlalchemy import Connection, Table, select
from sqlalchemy.orm import Session

from shared.db.engine import utcnow
from shared.db.models import Base
from shared.db.upsert import upsert_returning

REASON = "Paused"
_STATES: Table = Base.metadata.tables["recipient_states"]
_PAUSED = select(_STATES.c.recipient_id).where(_STATES.c.paused.is_(True))


def paused(connection: Connection) -> frozenset[str]:
    return frozenset(connection.execute(_PAUSED).scalars())


def set_paused(session: Session, recipient_id: str, value: bool) -> None:
    """Pause or resume a recipient (the CLI and the console call this)."""
    upsert_returning(
        session.connection(),
        _STATES,
        [{"recipient_id": recipient_id, "paused": value, "changed_at": utcnow()}],
        key="recipient_id",
        replace_when=_STATES.c.recipient_id.is_not(None),
        returning=_STATES.c.recipient_id,
    )
