"""Query pieces the operators' listings share (dead letters, batches; the console's pages)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, TypeVar

from sqlalchemy import Select
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
