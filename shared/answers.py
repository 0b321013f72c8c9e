"""Answers in the client's format (``Accept``): JSON (default), XML or plain text.

``{"outcome": ..., "reason": ..., "lead": {"id": ...}, "price": ...}`` becomes
``<result><outcome/>...<lead><id/></lead></result>`` or ``key: value`` lines with dotted
keys (``lead.id: ...``). Keys whose value is None are left out.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from shared.formats import xmlwrite
from shared.formats.dotpaths import flatten

JSON = "application/json"
XML = "text/xml"
TEXT = "text/plain"

_MEDIA = {
    "application/json": JSON,
    "application/*": JSON,
    "*/*": JSON,
    "text/xml": XML,
    "application/xml": XML,
    "text/plain": TEXT,
    "text/*": TEXT,
}


class NotAcceptable(Exception):
    """No format the client accepts can be produced."""


def negotiate(accept: str | None) -> str:
    """Pick the answer format for an ``Accept`` header; raises NotAcceptable."""
    if accept is None or not accept.strip():
        return JSON
    best_key: tuple[float, int, int] | None = None
    best = JSON
    for position, item in enumerate(accept.split(",")):
        media, *params = (p.strip() for p in item.split(";"))
        quality = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        chosen = _MEDIA.get(media.lower())
        if chosen is None or quality <= 0:
            continue
        # Higher q first, then exact types over wildcards, then the earlier entry.
        key = (quality, 0 if "*" in media else 1, -position)
        if best_key is None or key > best_key:
            best_key, best = key, chosen
    if best_key is None:
        raise NotAcceptable(accept)
    return best


def _clean(data: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in data.items():
        if value is None:
            continue
        out[key] = _clean(value) if isinstance(value, Mapping) else value
    return out


#: Characters XML 1.0 cannot carry (a reason quoted from a client may hold them).
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_LINE_BREAKS = re.compile(r"[\r\n\x0b\x0c\x85\u2028\u2029]+")


def _whole(value: Any) -> Any:
    """A whole number as an int (``"price": 0``, not ``0.0``); other money as the number
    a JSON reader expects (a two-place Decimal prints the same digits as a float)."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: _whole(v) for k, v in value.items()}
    return value


def _text_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(_whole(value))


def _xml_text(value: Any) -> str:
    return _NOT_XML.sub("", _text_value(value))


def _lines(data: Mapping[str, Any]) -> list[str]:
    """``key: value`` with dotted keys, one line per key whatever the value holds."""
    return [f"{key}: {_LINE_BREAKS.sub(' ', _text_value(value))}" for key, value in flatten(data)]


def render(data: Mapping[str, Any], media: str) -> tuple[bytes, str]:
    """Return the body and its content type."""
    clean = _clean(data)
    if media == XML:
        body = xmlwrite.from_mapping("result", clean, _xml_text, pretty=True)
        return body, "text/xml; charset=utf-8"
    if media == TEXT:
        return ("\n".join(_lines(clean)) + "\n").encode(), "text/plain; charset=utf-8"
    return json.dumps(_whole(clean)).encode(), "application/json; charset=utf-8"
