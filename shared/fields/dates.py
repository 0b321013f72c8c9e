"""Dates in the forms people type, and dates of birth (with the age, from one clock)."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from typing import Any

from shared.fields.value import Parsed, Parser

_MONTHS = {
    name: number
    for number, names in enumerate(
        (
            ("jan", "january"),
            ("feb", "february"),
            ("mar", "march"),
            ("apr", "april"),
            ("may",),
            ("jun", "june"),
            ("jul", "july"),
            ("aug", "august"),
            ("sep", "sept", "september"),
            ("oct", "october"),
            ("nov", "november"),
            ("dec", "december"),
        ),
        start=1,
    )
    for name in names
}
_DATE_US = re.compile(r"^(\d{1,2})[/.-](\d{1,2})[/.-](\d{4}|\d{2})$")
_DATE_YMD = re.compile(r"^(\d{4})[/.-](\d{1,2})[/.-](\d{1,2})$")
_DATE_MONTH_FIRST = re.compile(
    r"^([a-z]+)\.?\s+(\d{1,2})(?:st|nd|rd|th)?,?\s+(\d{4})$", re.IGNORECASE
)
_DATE_DAY_FIRST = re.compile(
    r"^(\d{1,2})(?:st|nd|rd|th)?\s+([a-z]+)\.?,?\s+(\d{4})$", re.IGNORECASE
)


def _today() -> date:
    """Today in UTC; the one clock the dob type reads (tests replace it)."""
    return datetime.now(UTC).date()


def parse_date(text: str, *, latest_year: int | None = None) -> date | None:
    """ISO 8601, US M/D/YYYY, YYYY/MM/DD and "Jan 2 2020" / "2 January 2020" forms.

    A two-digit year is put in the latest century that keeps it at or before
    ``latest_year`` (default: ten years from now).
    """
    text = text.strip()
    if latest_year is None:
        latest_year = _today().year + 10
    try:
        if len(text) >= 8 and text[:4].isdigit():
            return datetime.fromisoformat(text).date()
    except ValueError:
        pass
    year: int
    month: int
    day: int
    if match := _DATE_US.match(text):
        month, day = int(match.group(1)), int(match.group(2))
        year = _expand_year(match.group(3), latest_year)
    elif match := _DATE_YMD.match(text):
        year, month, day = (int(group) for group in match.groups())
    elif match := _DATE_MONTH_FIRST.match(text):
        found = _MONTHS.get(match.group(1).lower())
        if found is None:
            return None
        year, month, day = int(match.group(3)), found, int(match.group(2))
    elif match := _DATE_DAY_FIRST.match(text):
        found = _MONTHS.get(match.group(2).lower())
        if found is None:
            return None
        year, month, day = int(match.group(3)), found, int(match.group(1))
    else:
        return None
    try:
        return date(year, month, day)
    except ValueError:
        return None


def _expand_year(digits: str, latest_year: int) -> int:
    if len(digits) == 4:
        return int(digits)
    return latest_year - (latest_year - int(digits)) % 100


def _date_components(value: date) -> dict[str, Any]:
    return {"year": value.year, "month": value.month, "day": value.day}


def _parse_date(text: str) -> Parsed:
    value = parse_date(text)
    if value is None:
        return None
    return value.isoformat(), _date_components(value)


def _parse_dob(text: str) -> Parsed:
    today = _today()
    value = parse_date(text, latest_year=today.year)
    if value is None or value > today:
        return None
    age = today.year - value.year - ((today.month, today.day) < (value.month, value.day))
    return value.isoformat(), {**_date_components(value), "age": age}


PARSERS: dict[str, Parser] = {
    "date": _parse_date,
    "dob": _parse_dob,
}
