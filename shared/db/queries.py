"""Query pieces: the operators' listings' filters (dead letters, batches; the console's
pages), and ``PerDialect`` statements for the hot paths' batches."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from enum import StrEnum
from typing import Any, TypeVar

from sqlalchemy import (
    JSON,
    ColumnElement,
    Connection,
    Executable,
    Select,
    Table,
    TextClause,
    any_,
    bindparam,
    select,
    text,
    tuple_,
    update,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import InstrumentedAttribute

from shared.db.engine import SessionFactory, as_utc, json_text

Query = TypeVar("Query", bound=Select[Any])


def where_given(query: Query, *filters: tuple[InstrumentedAttribute[Any], Any]) -> Query:
    """``query`` narrowed to ``column == value`` for each (column, value) whose value is given
    (an operator's filter left out is None or empty)."""
    for column, value in filters:
        if value:
            query = query.where(column == value)
    return query


def from_key(
    query: Select[*tuple[Any, ...]],
    reader: Any,
    sort: InstrumentedAttribute[Any],
    ident: InstrumentedAttribute[Any],
    key: Any,
    *,
    newest_first: bool,
) -> Select[*tuple[Any, ...]]:
    """``query`` ordered by (``sort``, ``ident``) and, with a ``key`` (the ``ident`` of
    the last row shown), from just past that row: paging by key, never OFFSET, so a page
    costs the same far down a long list. ``reader`` (a session or connection) reads the
    key row's ``sort`` value; an unknown key starts at the beginning."""
    if key is not None:
        at = reader.execute(select(sort).where(ident == key)).scalar()
        if at is not None:
            row, past = tuple_(sort, ident), tuple_(at, key)
            query = query.where(row < past if newest_first else row > past)
    order = (sort.desc(), ident.desc()) if newest_first else (sort, ident)
    return query.order_by(*order)


def listed(factory: SessionFactory, query: Select[Any], *, utc: Iterable[str] = ()) -> list[Any]:
    """Every row ``query`` selects, read in a session of its own, with the datetime
    attributes named in ``utc`` in UTC (SQLite hands them back naive)."""
    with factory() as session:
        rows = list(session.scalars(query))
    for row in rows:
        for name in utc:
            setattr(row, name, as_utc(getattr(row, name)))
    return rows


OneOf = Callable[[ColumnElement[Any], str], ColumnElement[bool]]


def _in_list(column: ColumnElement[Any], name: str) -> ColumnElement[bool]:
    return column.in_(bindparam(name, expanding=True))


def _any_of_array(column: ColumnElement[Any], name: str) -> ColumnElement[bool]:
    return column == any_(bindparam(name, type_=postgresql.ARRAY(column.type)))


class PerDialect:
    """A read of the hot paths, built once for each dialect, a list of keys matched the
    way that dialect does it best: ``= ANY(:keys)`` on PostgreSQL, an expanding ``IN``
    elsewhere. ``build`` gets ``one_of(column, name)`` and returns the statement.

    ``execute`` runs it unprepared on PostgreSQL: a prepared statement's generic plan is
    made after a few runs and kept, and one made while a table was still small scans the
    whole table long after it has grown (4 ms instead of 0.3 ms per batch was measured on
    a fresh database). Planned at each run, it uses the index; the writes around it stay
    prepared."""

    def __init__(self, build: Callable[[OneOf], Executable]) -> None:
        self._build = build
        self._built: dict[str, Executable] = {}

    def __call__(self, connection: Connection) -> Executable:
        name = connection.dialect.name
        statement = self._built.get(name)
        if statement is None:
            statement = self._build(_any_of_array if name == "postgresql" else _in_list)
            self._built[name] = statement
        return statement

    def execute(self, connection: Connection, parameters: dict[str, Any]) -> Any:
        statement = self(connection)
        if connection.dialect.name != "postgresql":
            return connection.execute(statement, parameters)
        return _unprepared(connection, statement, parameters)


def _unprepared(connection: Connection, statement: Executable, parameters: Any) -> Any:
    raw = connection.connection.dbapi_connection
    saved = raw.prepare_threshold  # type: ignore[union-attr]
    raw.prepare_threshold = None  # type: ignore[union-attr]
    try:
        return connection.execute(statement, parameters)
    finally:
        raw.prepare_threshold = saved  # type: ignore[union-attr]


class UpdateMany:
    """An UPDATE of many rows of ``table`` by ``key``, each row with its own values.

    Each row is a dict of ``key`` (the key's value) and the columns it sets; the columns
    named in ``increment`` go up by one on every row besides (a row's version).
    On PostgreSQL it is one statement whatever the number of rows (the values go as one
    array per column, ``UPDATE ... FROM unnest(...)``), planned at each run for the
    reason ``PerDialect`` gives; elsewhere an executemany. One statement instead of one
    per row took half the CPU on both sides (measured with 30 rows a batch)."""

    def __init__(self, table: Table, key: str, *, increment: tuple[str, ...] = ()) -> None:
        self._table = table
        self._key = key
        self._increment = increment
        self._built: dict[tuple[str, tuple[str, ...]], Executable] = {}

    def execute(self, connection: Connection, rows: list[dict[str, Any]]) -> None:
        if not rows:
            return
        dialect = connection.dialect.name
        for group in _by_columns(rows):
            columns = tuple(c for c in group[0] if c != "key")
            statement = self._built.get((dialect, columns))
            if statement is None:
                statement = self._build(connection, columns)
                self._built[(dialect, columns)] = statement
            if dialect != "postgresql":
                connection.execute(statement, group)
                continue
            arrays: dict[str, list[Any]] = {"key": [row["key"] for row in group]}
            for column in columns:
                as_json = isinstance(self._table.c[column].type, JSON)
                arrays[column] = [
                    json_text(row[column])
                    if as_json and row[column] is not None
                    else _plain(row[column])
                    for row in group
                ]
            _unprepared(connection, statement, arrays)

    def _build(self, connection: Connection, columns: tuple[str, ...]) -> Executable:
        table = self._table
        if connection.dialect.name != "postgresql":
            return (
                update(table)
                .where(table.c[self._key] == bindparam("key"))
                .values({name: table.c[name] + 1 for name in self._increment})
            )
        return _unnest_update(connection, table, self._key, columns, self._increment)


def _unnest_update(
    connection: Connection,
    table: Table,
    key: str,
    columns: tuple[str, ...],
    increment: tuple[str, ...],
) -> TextClause:
    def array_type(name: str) -> str:
        column_type = table.c[name].type
        if isinstance(column_type, JSON):
            return "TEXT[]"
        return f"{column_type.compile(dialect=connection.dialect)}[]"

    def value(name: str) -> str:
        return f"CAST(v.{name} AS JSON)" if isinstance(table.c[name].type, JSON) else f"v.{name}"

    sets = [f"{name} = {value(name)}" for name in columns]
    sets += [f"{name} = t.{name} + 1" for name in increment]
    arrays = ", ".join(
        f"CAST(:{name} AS {array_type(key if name == 'key' else name)})"
        for name in ("key", *columns)
    )
    names = ", ".join(("key", *columns))
    return text(
        f"UPDATE {table.name} AS t SET {', '.join(sets)} "
        f"FROM unnest({arrays}) AS v({names}) WHERE t.{key} = v.key"
    )


def _plain(value: Any) -> Any:
    """A value as the driver sends it in an array (an enum of strings as its string)."""
    return value.value if isinstance(value, StrEnum) else value


def _by_columns(rows: Iterable[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """Rows grouped by the columns they set (one statement each)."""
    groups: dict[frozenset[str], list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault(frozenset(row), []).append(row)
    return list(groups.values())
