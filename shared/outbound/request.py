"""Building the recipient's request from its ``http`` settings and the lead's variables."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from shared.fields import FieldValue
from shared.flowconfig import HttpTarget
from shared.formats import dotpaths, xmlwrite
from shared.templates import is_template, render, render_value


@dataclass(frozen=True, slots=True)
class OutgoingRequest:
    method: str
    url: str
    headers: dict[str, str]
    body: bytes | None
    auth: tuple[str, str] | None


def plain(value: Any) -> Any:
    """A variable as it is sent: normalized when valid, raw when not."""
    if isinstance(value, FieldValue):
        return value.normal if value.valid and value.normal is not None else value.raw
    return value


def as_text(value: Any) -> str:
    value = plain(value)
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, dict | list):
        return json.dumps(value)
    return str(value)


def field_values(
    target: HttpTarget, variables: Mapping[str, Any], flow_fields: list[str]
) -> dict[str, Any]:
    """The name -> value pairs to send: the mapping, or every flow field under its own name
    (one the lead has no value for as None: null in JSON, empty in a form or XML)."""
    if target.fields is None:
        lead = variables.get("lead", {})
        return {f: plain(lead.get(f)) for f in flow_fields}
    values: dict[str, Any] = {}
    for name, spec in target.fields.items():
        if isinstance(spec, str) and is_template(spec):
            values[name] = plain(render_value(spec, variables))
        else:
            values[name] = spec
    return values


def nest(values: Mapping[str, Any]) -> dict[str, Any]:
    """Dot paths to nested objects; numeric parts make arrays (``items.0.id``); a path
    that cannot nest is a ValueError."""
    return dotpaths.nest(values.items(), arrays=True, strict=True)


def build_request(
    target: HttpTarget, variables: Mapping[str, Any], flow_fields: list[str], event_id: str
) -> OutgoingRequest:
    values = field_values(target, variables, flow_fields)
    headers = {name: render(value, variables) for name, value in target.headers.items()}
    headers["Idempotency-Key"] = event_id
    url = render(target.url or "", variables)
    body: bytes | None = None
    if target.method == "GET":
        query = urlencode([(k, as_text(v)) for k, v in values.items()])
        url = f"{url}{'&' if '?' in url else '?'}{query}" if query else url
    elif target.format == "json":
        body = json.dumps(nest(values), default=as_text).encode()
        headers.setdefault("Content-Type", "application/json")
    elif target.format == "xml":
        if target.fields is None:  # under a <lead> root, an unfilled field empty
            values = {f"lead.{name}": value for name, value in values.items()}
        body = xmlwrite.from_paths(values, as_text, default_root="lead")
        headers.setdefault("Content-Type", "application/xml")
    else:
        body = urlencode([(k, as_text(v)) for k, v in values.items()]).encode()
        headers.setdefault("Content-Type", "application/x-www-form-urlencoded")
    auth = None
    if target.basic_username is not None or target.basic_password is not None:
        auth = (target.basic_username or "", target.basic_password or "")
    headers.setdefault("Accept", "application/json, text/xml;q=0.9, text/html;q=0.8, */*;q=0.5")
    return OutgoingRequest(method=target.method, url=url, headers=headers, body=body, auth=auth)
