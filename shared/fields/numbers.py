"""Numbers (``"$100,000.00"`` -> 100000) and ranges (``"10-20"``, ``"50+"``)."""

from __future__ import annotations

import math
import re
from decimal import Decimal

from shared.fields.value import Parsed, Parser

_NUMBER_NOISE = re.compile(r"[\s,$€£¥]")
_NUMBER = re.compile(r"^[+-]?(?:\d+(?:\.\d*)?|\.\d+)$")


def parse_number(text: str) -> int | float | None:
    """``"$100,000.00"`` -> 100000: currency symbols, commas and spaces dropped; else None."""
    cleaned = _NUMBER_NOISE.sub("", text)
    if not _NUMBER.match(cleaned):
        return None
    return _number_of(Decimal(cleaned))


def _number_of(value: Decimal) -> int | float:
    if value == value.to_integral_value():
        return int(value)
    return float(value)


def _parse_number(text: str) -> Parsed:
    number = parse_number(text)
    if number is None:
        return None
    return number, {}


_RANGE_NUMBER = r"(-?(?:\d+(?:\.\d*)?|\.\d+))"
_RANGE_OPEN = re.compile(rf"^{_RANGE_NUMBER}\s*\+$")
_RANGE_CLOSED = re.compile(
    rf"^{_RANGE_NUMBER}\s*(?:-|\u2013|\u2014|to|thru|through)\s*{_RANGE_NUMBER}$", re.IGNORECASE
)
_RANGE_SINGLE = re.compile(rf"^{_RANGE_NUMBER}$")
_RANGE_NOISE = re.compile(r"[,$€£¥]")


def _parse_range(text: str) -> Parsed:
    cleaned = _RANGE_NOISE.sub("", text).strip()
    match = _RANGE_OPEN.match(cleaned)
    if match is not None:
        floor = _number_of(Decimal(match.group(1)))
        return f"{floor}+", {"min": floor, "max": None, "mid": None, "avg": None}
    match = _RANGE_CLOSED.match(cleaned)
    if match is not None:
        low, high = sorted(Decimal(group) for group in match.groups())
        average = (low + high) / 2
        return f"{_number_of(low)}-{_number_of(high)}", {
            "min": _number_of(low),
            "max": _number_of(high),
            "mid": math.floor(average),
            "avg": _number_of(round(average, 2)),
        }
    match = _RANGE_SINGLE.match(cleaned)
    if match is not None:
        value = _number_of(Decimal(match.group(1)))
        return str(value), {"min": value, "max": value, "mid": value, "avg": value}
    return None


PARSERS: dict[str, Parser] = {
    "number": _parse_number,
    "range": _parse_range,
}
