"""A lead's fields as stored, and the variables rules and templates see.

Stored form (``leads.fields``): ``{"typed": {field_id: FieldValue JSON}, "extra": {...}}``:
the flow's declared fields parsed by type, and every other submitted field as given.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

from shared.fields import FieldValue, parse_field
from shared.flowconfig import Flow
from shared.formats.dotpaths import lookup


def _stringify(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _stringify(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_stringify(v) for v in value]
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def build_fields(flow: Flow, submitted: Mapping[str, Any]) -> dict[str, Any]:
    typed: dict[str, Any] = {}
    for field_id, definition in flow.fields.items():
        raw = lookup(submitted, field_id)
        if raw is None:
            continue
        if isinstance(raw, list):
            raw = raw[-1] if raw else ""
        if isinstance(raw, Mapping) and isinstance(raw.get("value"), str):
            raw = raw["value"]  # XML ``<phone_1 type="home">5125551212</phone_1>``
        if isinstance(raw, Mapping) or not isinstance(raw, str):
            raw = _stringify(raw)
        typed[field_id] = parse_field(definition.type, raw).to_json()
    return {"typed": typed, "extra": _undeclared(submitted, set(flow.fields))}


#: What the console searches leads by: a field of each type (these names first).
CONTACTS = (("email", "email"), ("phone", "phone_1"))
CONTACT_LENGTH = 254


def contacts(fields: Mapping[str, Any]) -> dict[str, str | None]:
    """A lead's e-mail and phone as the console searches them (``leads.email`` and
    ``leads.phone``): the field named ``email`` (``phone_1``), else the first of its type;
    its normal form (a lowercased e-mail, a national number), or its trimmed, case-folded
    text when its type could not read it."""
    typed = fields.get("typed") or {}
    found: dict[str, str | None] = {}
    for type_name, preferred in CONTACTS:
        value = typed.get(preferred)
        if not isinstance(value, Mapping) or value.get("type") != type_name:
            value = next(
                (
                    v
                    for v in typed.values()
                    if isinstance(v, Mapping) and v.get("type") == type_name
                ),
                None,
            )
        found[type_name] = _searched(value) if value is not None else None
    return found


def searched_contact(type_name: str, text: str) -> str | None:
    """What a search for ``text`` as an e-mail or a phone looks for (as ``contacts``)."""
    return _searched(parse_field(type_name, text.strip()).to_json()) if text.strip() else None


def _searched(value: Mapping[str, Any]) -> str | None:
    found = compared(value)
    return found[:CONTACT_LENGTH] if found is not None else None


#: Types whose normal form keeps the case it was written in: compared case-folded
#: (e-mails are lowercased already; states and postal codes have one case).
_CASE_KEPT = frozenset({"string", "first_name", "last_name", "city"})


def compared(value: Mapping[str, Any] | None) -> str | None:
    """A typed field's value as compared (duplicate keys) and searched (the console): its
    normal form (case-folded where it keeps the case it was written in: ``John`` is
    ``JOHN``), or the text its type could not read, trimmed and case-folded; None if
    blank."""
    if value is None:
        return None
    normal = value.get("normal") if value.get("valid") else None
    if normal is None:
        raw = value.get("raw")
        normal = raw.strip().casefold() if isinstance(raw, str) else None
    text = str(normal).strip() if normal is not None else ""
    if value.get("type") in _CASE_KEPT:
        text = text.casefold()
    return text or None


def _undeclared(submitted: Mapping[str, Any], declared: set[str]) -> dict[str, Any]:
    """Every submitted value that is not a declared field, nesting kept: with
    ``mortgage.loan.amount`` declared, ``mortgage.loan.rate`` stays."""
    extra: dict[str, Any] = {}
    for key, value in submitted.items():
        if key in declared:
            continue
        inner = {d[len(key) + 1 :] for d in declared if d.startswith(f"{key}.")}
        if inner and isinstance(value, Mapping):
            rest = _undeclared(value, inner)
            if rest:
                extra[key] = rest
            continue
        extra[key] = _stringify(value)
    return extra


def typed_values(fields: Mapping[str, Any]) -> dict[str, FieldValue]:
    return {k: FieldValue.from_json(v) for k, v in (fields.get("typed") or {}).items()}


def lead_namespace(lead_id: str, fields: Mapping[str, Any]) -> dict[str, Any]:
    lead: dict[str, Any] = dict(fields.get("extra") or {})
    lead.update(typed_values(fields))
    lead["id"] = lead_id
    return lead


def base_variables(
    lead_id: str, flow_id: str, source_id: str, received_at: datetime, fields: Mapping[str, Any]
) -> dict[str, Any]:
    """What rules and templates read of a lead: ``lead.*``, ``flow.id``, ``source.id``,
    ``submission.timestamp``."""
    return {
        "lead": lead_namespace(lead_id, fields),
        "flow": {"id": flow_id},
        "source": {"id": source_id},
        "submission": {"timestamp": received_at.isoformat()},
    }


def recipient_results(
    steps: Iterable[tuple[str | None, str | None, str | None, Decimal | None, Any]],
) -> dict[str, dict[str, Any]]:
    """What later rules and templates read of earlier recipient steps, from each step's
    (recipient id, outcome, reason, price, appended data), in step order:
    ``<recipient>.outcome``, ``.reason``, ``.price`` and the appended data."""
    results: dict[str, dict[str, Any]] = {}
    for recipient_id, outcome, reason, price, appended in steps:
        if recipient_id and outcome:
            results[recipient_id] = {
                **(appended or {}),
                "outcome": outcome,
                "reason": reason,
                "price": price,
            }
    return results


def display_fields(fields: Mapping[str, Any]) -> dict[str, Any]:
    """Normalized values (raw when invalid) for people and exports."""
    out: dict[str, Any] = dict(fields.get("extra") or {})
    for field_id, value in typed_values(fields).items():
        out[field_id] = value.normal if value.valid and value.normal is not None else value.raw
    return out


def is_blank(fields: Mapping[str, Any], field_id: str) -> bool:
    value = (fields.get("typed") or {}).get(field_id)
    if value is None:
        return True
    raw = value.get("raw")
    return raw is None or (isinstance(raw, str) and not raw.strip())
