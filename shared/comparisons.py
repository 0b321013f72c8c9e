"""What each rule operator means: ``is equal to``, ``is less than``, ``includes``...

Each operator is a function of the resolved left value and the literal right value.
Comparisons are case-insensitive, numeric when both sides are numbers, and typed by the
left side when it is a parsed field (``Texas`` read as a state is ``TX``). A negated
operator (``is not equal to``) is its positive one, inverted: ``NEGATIONS`` names it.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from shared.fields import FALSE_WORDS, FIELD_TYPES, TRUE_WORDS, FieldValue, parse_field, to_text


def _is_blank(value: Any) -> bool:
    if isinstance(value, FieldValue):
        return _is_blank(value.raw)
    if value is None:
        return True
    if isinstance(value, str):
        return not value.strip()
    if isinstance(value, list | tuple | dict):
        return not value
    return False


def _operand(value: Any) -> Any:
    """What a comparison sees: a field's normal value, or its raw text when invalid."""
    if isinstance(value, FieldValue):
        return value.normal if value.valid and value.normal is not None else value.raw
    return value


_NUMBER_TEXT = re.compile(r"^[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?$")


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float | Decimal):  # a price is a Decimal
        return float(value)
    if isinstance(value, str) and _NUMBER_TEXT.match(value.strip()):
        return float(value)
    return None


def _boolean(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    word = to_text(value).strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    return None


@functools.lru_cache(maxsize=4096)
def _parsed_literal(type_name: str, text: str) -> Any:
    """A literal read as the left side's field type: its normal value, or None."""
    if type_name == "dob":
        type_name = "date"
    parsed = parse_field(type_name, text)
    return parsed.normal if parsed.valid else None


def _typed_rhv(lhv: Any, rhv: Any) -> Any:
    """``rhv`` parsed as ``lhv``'s field type when that succeeds (``Texas`` -> ``TX``)."""
    if not isinstance(lhv, FieldValue) or lhv.type not in FIELD_TYPES or not lhv.valid:
        return rhv
    if not isinstance(rhv, str | int | float) or isinstance(rhv, bool):
        return rhv
    typed = _parsed_literal(lhv.type, to_text(rhv))
    return rhv if typed is None else typed


def _equal(lhv: Any, rhv: Any) -> bool:
    if _is_blank(lhv) or _is_blank(rhv):
        return _is_blank(lhv) and _is_blank(rhv)
    left, right = _operand(lhv), _operand(_typed_rhv(lhv, rhv))
    if isinstance(left, list | tuple):
        if isinstance(right, list | tuple):
            return len(left) == len(right) and all(map(_equal, left, right))
        return False
    left_number, right_number = _number(left), _number(right)
    if left_number is not None and right_number is not None:
        return left_number == right_number
    if isinstance(left, bool) or isinstance(right, bool):
        return _boolean(left) is not None and _boolean(left) == _boolean(right)
    return _fold(left) == _fold(right)


def _fold(value: Any) -> str:
    return to_text(value).strip().casefold()


def _compare(lhv: Any, rhv: Any) -> int | None:
    """-1, 0 or 1 ordering lhv against rhv; None when either is blank."""
    if _is_blank(lhv) or _is_blank(rhv):
        return None
    left, right = _operand(lhv), _operand(_typed_rhv(lhv, rhv))
    left_number, right_number = _number(left), _number(right)
    if left_number is not None and right_number is not None:
        return (left_number > right_number) - (left_number < right_number)
    left_text, right_text = _fold(left), _fold(right)
    return (left_text > right_text) - (left_text < right_text)


def _less(lhv: Any, rhv: Any) -> bool:
    order = _compare(lhv, rhv)
    return order is not None and order < 0


def _less_or_equal(lhv: Any, rhv: Any) -> bool:
    order = _compare(lhv, rhv)
    return order is not None and order <= 0


def _greater(lhv: Any, rhv: Any) -> bool:
    order = _compare(lhv, rhv)
    return order is not None and order > 0


def _greater_or_equal(lhv: Any, rhv: Any) -> bool:
    order = _compare(lhv, rhv)
    return order is not None and order >= 0


def _between(lhv: Any, rhv: Any) -> bool:
    if not isinstance(rhv, list | tuple) or len(rhv) != 2:
        return False
    low, high = rhv
    return _greater_or_equal(lhv, low) and _less_or_equal(lhv, high)


def _format_is_valid(lhv: Any, rhv: Any) -> bool:
    if isinstance(lhv, FieldValue):
        return lhv.valid
    return not _is_blank(lhv)


def _items(rhv: Any) -> list[Any]:
    """A list literal; a text literal is a comma-separated list."""
    if isinstance(rhv, list | tuple):
        return list(rhv)
    if isinstance(rhv, str):
        return [item.strip() for item in rhv.split(",")]
    return [] if rhv is None else [rhv]


def _includes(lhv: Any, rhv: Any) -> bool:
    if _is_blank(lhv) or _is_blank(rhv):
        return False
    needles = rhv if isinstance(rhv, list | tuple) else [rhv]
    left = _operand(lhv)
    if isinstance(left, list | tuple):
        return any(_equal(item, needle) for item in left for needle in needles)
    text = _fold(left)
    return any(not _is_blank(needle) and _fold(needle) in text for needle in needles)


def _included_in(lhv: Any, rhv: Any) -> bool:
    return any(_equal(lhv, item) for item in _items(rhv))


@functools.lru_cache(maxsize=1024)
def _pattern(source: str) -> re.Pattern[str] | None:
    try:
        return re.compile(source, re.IGNORECASE)
    except re.error:
        return None


def _matches(lhv: Any, rhv: Any) -> bool:
    if rhv is None or isinstance(rhv, list | tuple | dict):
        return False
    pattern = _pattern(to_text(rhv))
    return pattern is not None and pattern.search(to_text(_operand(lhv))) is not None


def _is_true(lhv: Any, rhv: Any) -> bool:
    return _boolean(_operand(lhv)) is True


def _is_false(lhv: Any, rhv: Any) -> bool:
    return _is_blank(lhv) or _boolean(_operand(lhv)) is False


OPERATIONS: dict[str, Callable[[Any, Any], bool]] = {
    "is equal to": _equal,
    "is less than": _less,
    "is less than or equal to": _less_or_equal,
    "is greater than": _greater,
    "is greater than or equal to": _greater_or_equal,
    "is between": _between,
    "is blank": lambda lhv, _rhv: _is_blank(lhv),
    "format is valid": _format_is_valid,
    "includes": _includes,
    "is included in": _included_in,
    "matches pattern": _matches,
    "is true": _is_true,
    "is false": _is_false,
}
NEGATIONS = {
    "is not equal to": "is equal to",
    "is not between": "is between",
    "is not blank": "is blank",
    "format is invalid": "format is valid",
    "does not include": "includes",
    "is not included in": "is included in",
    "does not match pattern": "matches pattern",
}
