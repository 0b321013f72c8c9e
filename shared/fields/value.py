"""A parsed field value, and the text a value shows in a template or a file cell."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

Raw = str | list[Any] | dict[str, Any]


@dataclass(frozen=True, slots=True)
class FieldValue:
    """A parsed field: what was submitted, whether it is valid, its normal form, its parts."""

    type: str
    raw: Raw
    valid: bool
    normal: Any
    components: dict[str, Any] = field(default_factory=dict)

    def __str__(self) -> str:
        if self.valid and self.normal is not None:
            return to_text(self.normal)
        return to_text(self.raw)

    def to_json(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "raw": self.raw,
            "valid": self.valid,
            "normal": self.normal,
            "components": dict(self.components),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> FieldValue:
        raw = data.get("raw", "")
        if not isinstance(raw, str | list | dict):
            raw = to_text(raw)
        return cls(
            type=str(data["type"]),
            raw=raw,
            valid=bool(data.get("valid", False)),
            normal=data.get("normal"),
            components=dict(data.get("components") or {}),
        )


def to_text(value: Any) -> str:
    """The text a template or a file cell shows for a value."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, list | tuple | dict):
        return json.dumps(value, default=str, ensure_ascii=False)
    return str(value)


#: What a type's parser returns: the normal form and the components, or None (invalid).
Parsed = tuple[Any, dict[str, Any]] | None
Parser = Callable[[str], Parsed]
