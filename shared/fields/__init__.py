"""Field types: parse a submitted value into its normal form, validity and components.

LeadConduit's types are the reference. Parsing never raises for a bad value: the value is
kept with ``valid=False`` so that rules can test it. Only an unknown type name raises.
The types live in modules by family (``words``, ``contact``, ``places``, ``numbers``,
``dates``, ``network``); this module maps each type name to its parser.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from shared.fields import contact, dates, network, numbers, places, words
from shared.fields.dates import parse_date
from shared.fields.numbers import parse_number
from shared.fields.places import STATE_NAMES
from shared.fields.value import FieldValue, Raw, to_text
from shared.fields.words import FALSE_WORDS, TRUE_WORDS

__all__ = [
    "FALSE_WORDS",
    "FIELD_TYPES",
    "STATE_NAMES",
    "TRUE_WORDS",
    "FieldValue",
    "Raw",
    "parse_date",
    "parse_field",
    "parse_number",
    "to_text",
]

_PARSERS = {
    **words.PARSERS,
    **contact.PARSERS,
    **places.PARSERS,
    **numbers.PARSERS,
    **dates.PARSERS,
    **network.PARSERS,
}

FIELD_TYPES: frozenset[str] = frozenset(_PARSERS)


def parse_field(type_name: str, raw: Any) -> FieldValue:
    """Parse ``raw`` as the field type ``type_name``; ValueError for an unknown type."""
    parser = _PARSERS.get(type_name)
    if parser is None:
        raise ValueError(f"unknown field type {type_name!r}")
    submitted = _submitted(raw)
    if not isinstance(submitted, str):
        return FieldValue(type_name, submitted, False, None, {})
    text = submitted.strip()
    if not text:
        return FieldValue(type_name, submitted, False, None, {})
    parsed = parser(text)
    if parsed is None:
        return FieldValue(type_name, submitted, False, None, {})
    normal, components = parsed
    return FieldValue(type_name, submitted, True, normal, components)


def _submitted(raw: Any) -> Raw:
    if isinstance(raw, FieldValue):
        return raw.raw
    if isinstance(raw, str | list | dict):
        return raw
    if isinstance(raw, tuple):
        return list(raw)
    if isinstance(raw, Mapping):
        return dict(raw)
    return to_text(raw)
