"""INSERT ... ON CONFLICT for SQLite and PostgreSQL alike: the one way to claim a unique
row (insert-if-absent), never a read followed by a write."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, Connection, Select, Table, bindparam, cast, func, select
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
    parameters: Any = list(rows)
    if connection.dialect.name == "postgresql":
        # One short statement whatever the number of rows, the values as one array per
        # column: a many-row VALUES list is a new, long statement for psycopg to parse at
        # each batch (measured on intake's keys: three rows a lead).
        columns = list(rows[0])
        statement = statement.from_select(columns, _unnest(table, columns))
        parameters = {c: [row[c] for row in rows] for c in columns}
    if replace_when is None:
        statement = statement.on_conflict_do_nothing(index_elements=keys)
    else:
        replaced = {c: statement.excluded[c] for c in rows[0] if c not in keys}
        statement = statement.on_conflict_do_update(
            index_elements=keys, set_=replaced, where=replace_when
        )
    if isinstance(returning, tuple):
        result = connection.execute(statement.returning(*returning), parameters)
        return [tuple(row) for row in result]
    return list(connection.execute(statement.returning(returning), parameters).scalars())


def _unnest(table: Table, columns: list[str]) -> Select[Any]:
    """PostgreSQL: rows whose columns come as one array parameter each (named as the
    column). For plain columns (the JSON types would need a cast)."""
    arrays = [cast(bindparam(c), postgresql.ARRAY(table.c[c].type)) for c in columns]
    rows = func.unnest(*arrays).table_valued(*columns).render_derived(name="v")
    return select(*(rows.c[c] for c in columns))
