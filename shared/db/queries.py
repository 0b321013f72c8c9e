"""Query pieces the operators' listings share (dead letters, batches; the console's pages)."""

from __future__ import annotations

from typing import Any, TypeVar

from sqlalchemy import Select
from sqlalchemy.orm import InstrumentedAttribute

Query = TypeVar("Query", bound=Select[Any])


def where_given(query: Query, *filters: tuple[InstrumentedAttribute[Any], Any]) -> Query:
    """``query`` narrowed to ``column == value`` for each (column, value) whose value is given
    (an operator's filter left out is None or empty)."""
    for column, value in filters:
        if value:
            query = query.where(column == value)
    return query
