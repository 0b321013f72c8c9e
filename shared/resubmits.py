"""Resubmissions: the same submission sent again gets the first one's lead.

A source that sends the same body (content type and query string included) again within
its flow's ``duplicates.resubmit_window`` (60 s by default), or the same
``Idempotency-Key`` header within 24 hours, gets the lead of its first submission back:
nothing new is stored or routed (SPEC section 14). This is also what makes a lost answer
harmless: a source told 503 after a commit whose answer was lost sends again, and is
answered with the lead that was stored.

Each key is a hash, kept in the ``submissions`` table with its expiry. ``Held`` runs in
the transaction that stores the leads: it reads the live keys in one statement, then
inserts the new ones in one (taking over expired rows); a key another transaction
inserted meanwhile raises ``Raced`` (the caller tries the batch again, and then finds
it). Intake claims a batch's resubmission keys and its duplicate keys
(``shared.gates.duplicates``) through one ``Held``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, bindparam, delete, select

from shared.db.engine import utcnow
from shared.db.models import Base
from shared.db.queries import PerDialect
from shared.db.upsert import upsert_returning

IDEMPOTENCY_KEY_SECONDS = 24 * 3600.0
_TABLE = Base.metadata.tables["submissions"]
_LIVE = PerDialect(
    lambda one_of: select(_TABLE.c.key, _TABLE.c.record_id).where(
        one_of(_TABLE.c.key, "keys"), _TABLE.c.expires_at > bindparam("now")
    )
)


class Raced(Exception):
    """Another transaction stored one of these keys after they were read."""


@dataclass(frozen=True, slots=True)
class HeldKey:
    """A hash held for a while: a submission's (a copy of it is a resubmission) or an
    accepted lead's duplicate key (``shared.gates.duplicates``)."""

    key: bytes  # a sha256 digest
    seconds: float  # how long it is held


def keys_of(
    flow_id: str,
    source_id: str,
    *,
    content_type: str,
    query: str,
    body: bytes,
    idempotency_key: str | None,
    window: float,
) -> list[HeldKey]:
    """The keys of one submission: its body (unless the window is 0) and its
    ``Idempotency-Key`` header (when sent)."""
    keys = []
    if window > 0:
        material = b"\0".join([b"body", content_type.encode(), query.encode(), body])
        keys.append(HeldKey(hash_of(flow_id, source_id, material), window))
    if idempotency_key:
        material = b"\0".join([b"idempotency-key", idempotency_key.strip().encode()])
        keys.append(HeldKey(hash_of(flow_id, source_id, material), IDEMPOTENCY_KEY_SECONDS))
    return keys


def keys_of_header(kind: str, scope: str, idempotency_key: str) -> list[HeldKey]:
    """The key of a request of ``kind`` about ``scope`` (an event id) carrying an
    ``Idempotency-Key`` header."""
    material = b"\0".join([b"idempotency-key", idempotency_key.strip().encode()])
    return [HeldKey(hash_of(kind, scope, material), IDEMPOTENCY_KEY_SECONDS)]


def find(connection: Connection, keys: Sequence[HeldKey], now: datetime) -> str | None:
    """What the first live key of ``keys`` was stored for, if any."""
    live = _LIVE.execute(connection, {"keys": [k.key for k in keys], "now": now})
    found = {key: stored for key, stored in live}
    return next((found[k.key] for k in keys if k.key in found), None)


def hash_of(flow_id: str, source_id: str, material: bytes) -> bytes:
    digest = hashlib.sha256(f"{flow_id}\0{source_id}\0".encode())
    digest.update(material)
    return digest.digest()


class Held:
    """Keys claimed in one transaction: the live ones read in one statement, the new ones
    written in one (``write``). ``first`` tells what a key already stands for (in the
    database, or earlier in this transaction); ``hold`` claims keys for a record."""

    def __init__(
        self, connection: Connection, keys: Iterable[HeldKey] = (), now: datetime | None = None
    ) -> None:
        self._connection = connection
        self._now = now or utcnow()
        self._earlier: dict[bytes, str] = {}
        self._read: set[bytes] = set()
        self._rows: list[dict[str, Any]] = []
        self.read(keys)

    def read(self, keys: Iterable[HeldKey]) -> None:
        """Read which of ``keys`` are live (one statement for those not read yet), before
        asking ``first``: read a batch's keys together up front."""
        wanted = list({k.key for k in keys} - self._read)
        if wanted:
            self._read.update(wanted)
            live = _LIVE.execute(self._connection, {"keys": wanted, "now": self._now})
            self._earlier.update({key: record_id for key, record_id in live})

    def first(self, keys: Sequence[HeldKey]) -> str | None:
        return next((self._earlier[k.key] for k in keys if k.key in self._earlier), None)

    def hold(self, record_id: str, keys: Sequence[HeldKey]) -> None:
        for key in keys:
            self._earlier[key.key] = record_id  # a match later in the batch finds it
            self._rows.append(
                {
                    "key": key.key,
                    "record_id": record_id,
                    "expires_at": self._now + timedelta(seconds=key.seconds),
                }
            )

    def take(self, batch: Sequence[tuple[str, Sequence[HeldKey]]]) -> list[str | None]:
        """For each (record id, keys) of a batch: what a live key already stands for (in
        the database or earlier in the batch), or None: its keys are now held for it."""
        answers = []
        for record_id, keys in batch:
            first = self.first(keys)
            answers.append(first)
            if first is None:
                self.hold(record_id, keys)
        return answers

    def write(self) -> None:
        """Insert the keys held (taking over expired rows); ``Raced`` if another
        transaction stored one of them after they were read."""
        if not self._rows:
            return
        stored = upsert_returning(
            self._connection,
            _TABLE,
            self._rows,
            key="key",
            replace_when=_TABLE.c.expires_at <= self._now,
            returning=_TABLE.c.key,
        )
        if len(stored) != len(self._rows):
            raise Raced(f"{len(self._rows) - len(stored)} keys were taken meanwhile")


def take(
    connection: Connection, batch: Sequence[tuple[str, Sequence[HeldKey]]], now: datetime
) -> list[str | None]:
    """For each (lead id, keys) of a batch: the lead an earlier submission made (this one
    is a resubmission), or None (its keys are now stored under its lead id)."""
    held = Held(connection, (k for _, keys in batch for k in keys), now)
    answers = held.take(batch)
    held.write()
    return answers


_FORGET = delete(_TABLE).where(
    _TABLE.c.key == bindparam("k"), _TABLE.c.record_id == bindparam("record_id")
)


def forget(connection: Connection, held: Sequence[tuple[str, Sequence[HeldKey]]]) -> None:
    """Let go of the keys held for these records (each: a record id and its keys, as they
    were taken): by key, so no index of the records is kept up on every insert."""
    rows = [{"k": key.key, "record_id": record_id} for record_id, keys in held for key in keys]
    if rows:
        connection.execute(_FORGET, rows)


def prune(connection: Connection, now: datetime, limit: int = 5000) -> int:
    """Forget up to ``limit`` expired keys; how many went."""
    expired = select(_TABLE.c.key).where(_TABLE.c.expires_at <= now).limit(limit).scalar_subquery()
    return connection.execute(delete(_TABLE).where(_TABLE.c.key.in_(expired))).rowcount or 0
