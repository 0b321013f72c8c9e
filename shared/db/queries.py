"""Query pieces: the operators' listings' filters (dead letters, batches; the console's
pages), and ``PerDialect`` statements for the hot paths' batches."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, Connection, Executable, Select, any_, bindparam
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import InstrumentedAttribute

from shared.db.engine import SessionFactory, as_utc

Query = TypeVar("Query", bound=Select[Any])


def where_given(query: Query, *filters: tuple[InstrumentedAttribute[Any], Any]) -> Query:
    """``query`` narrowed to ``column == value`` for each (column, value) whose value is given
    (an operator's filter left out is None or empty)."""
    for column, value in filters:
        if value:
            query = query.where(column == value)
    return query


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
        raw = connection.connection.dbapi_connection
        saved = raw.prepare_threshold  # type: ignore[union-attr]
        raw.prepare_threshold = None  # type: ignore[union-attr]
        try:
            return connection.execute(statement, parameters)
        finally:
            raw.prepare_threshold = saved  # type: ignore[union-attr]
