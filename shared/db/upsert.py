"""INSERT ... ON CONFLICT for SQLite and PostgreSQL alike: the one way to claim a unique
row (insert-if-absent), never a read followed by a write."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, Connection, Table
from sqlalchemy.dialects import postgresql, sqlite


def _insert(connection: Connection, table: Table) -> Any:
    if connection.dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


def upsert_returning(
    connection: Connection,
    table: Table,
    rows: Sequence[dict[str, Any]],
    *,
    key: str | list[str],
    replace_when: ColumnElement[bool] | None,
    returning: Any,
) -> list[Any]:
    """Insert ``rows``; a row whose ``key`` (a column, or the columns of a unique
    constraint) exists replaces it only when ``replace_when``
    holds for the existing row (never, if None). Returns ``returning`` of each row inserted
    or replaced: a row missing from the result lost to an existing one."""
    keys = [key] if isinstance(key, str) else key
    statement = _insert(connection, table)
    if replace_when is None:
        statement = statement.on_conflict_do_nothing(index_elements=keys)
    else:
        columns = {c: statement.excluded[c] for c in rows[0] if c not in keys}
        statement = statement.on_conflict_do_update(
            index_elements=keys, set_=columns, where=replace_when
        )
    if isinstance(returning, tuple):
        result = connection.execute(statement.returning(*returning), list(rows))
        return [tuple(row) for row in result]
    return list(connection.execute(statement.returning(returning), list(rows)).scalars())
