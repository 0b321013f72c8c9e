"""Dates and times operators type (``--since``, ``--until``): ISO 8601, UTC by default."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta


def parse_when(text: str, *, end: bool = False) -> datetime:
    """An ISO 8601 date or time, as UTC (a time without offset is UTC). A bare date as
    an end (``--until``) means the end of that day. Raises ValueError naming the text."""
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            start = datetime.combine(day, time(), tzinfo=UTC)
            return start + timedelta(days=1) if end else start
        value = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{text!r} is not an ISO 8601 date or time") from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    value = value.astimezone(UTC)
    return value + timedelta(microseconds=1) if end else value
