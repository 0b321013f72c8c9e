"""A feedback request's body (form, JSON or XML, per its required Content-Type) to a
``Feedback``; every problem is one ``InvalidFeedback`` with the status to answer."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from services.feedback.acceptance import KINDS, Kind
from shared.errors import LeadflowError
from shared.formats.bodies import FORM, JSON_TYPES, XML_TYPES, BodyError, parse_body

MAX_BODY_BYTES = 64 * 1024


class InvalidFeedback(LeadflowError):
    """The request cannot be read: 400 (field, body), 413 (size) or 415 (Content-Type)."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Feedback:
    kind: Kind
    reason: str | None


def _supported(media: str) -> bool:
    return (
        media == FORM
        or media in JSON_TYPES
        or media in XML_TYPES
        or media.endswith(("+json", "+xml"))
    )


def _text(fields: dict[str, Any], name: str) -> str | None:
    value = fields.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise InvalidFeedback(400, f"{name} must be text")
    text = str(value).strip()
    return text or None


def read_feedback(content_type: str | None, body: bytes, charset: str | None = None) -> Feedback:
    media = (content_type or "").split(";")[0].strip().lower()
    if not media:
        raise InvalidFeedback(415, "a Content-Type header is required (form, JSON or XML)")
    if not _supported(media):
        raise InvalidFeedback(415, f"unsupported Content-Type '{media}' (use form, JSON or XML)")
    try:
        fields = parse_body(content_type, body, charset)
    except BodyError as exc:
        raise InvalidFeedback(exc.status, exc.reason) from None
    kind = _text(fields, "type")
    if kind is None:
        raise InvalidFeedback(400, "type is required")
    kind = kind.lower()
    if kind not in KINDS:
        raise InvalidFeedback(400, f"type must be 'return' or 'conversion', not {kind[:40]!r}")
    reason = _text(fields, "reason")
    if kind == "return" and reason is None:
        raise InvalidFeedback(400, "reason is required for a return")
    return Feedback(kind="return" if kind == "return" else "conversion", reason=reason)
