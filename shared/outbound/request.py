"""Building the recipient's request from its ``http`` settings and the lead's variables."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from lxml import etree

from shared.fields import FieldValue
from shared.flowconfig import HttpTarget
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
    """The name -> value pairs to send: the mapping, or every flow field under its own name."""
    if target.fields is None:
        lead = variables.get("lead", {})
        return {f: plain(lead[f]) for f in flow_fields if f in lead}
    values: dict[str, Any] = {}
    for name, spec in target.fields.items():
        if isinstance(spec, str) and is_template(spec):
            values[name] = plain(render_value(spec, variables))
        else:
            values[name] = spec
    return values


_INDEX = re.compile(r"^\d+$")


def nest(values: Mapping[str, Any]) -> Any:
    """Dot paths to nested objects; numeric parts make arrays (``items.0.id``)."""
    root: dict[str, Any] = {}
    for path, value in values.items():
        parts = path.split(".")
        node: Any = root
        for part, following in zip(parts, [*parts[1:], None], strict=True):
            key: Any = int(part) if isinstance(node, list) and _INDEX.match(part) else part
            if following is None:
                _assign(node, key, value)
                break
            child = _get(node, key)
            if child is None:
                child = [] if _INDEX.match(following) else {}
                _assign(node, key, child)
            node = child
    return root


def _get(node: Any, key: Any) -> Any:
    if isinstance(node, list):
        return node[key] if isinstance(key, int) and key < len(node) else None
    return node.get(key)


def _assign(node: Any, key: Any, value: Any) -> None:
    if isinstance(node, list):
        while len(node) <= key:
            node.append(None)
        node[key] = value
    else:
        node[key] = value


def to_xml(values: Mapping[str, Any]) -> bytes:
    """Dot paths include the root element; ``a.b@attr`` sets an attribute on ``b``."""
    root: Any = None
    for path, value in values.items():
        path, _, attribute = path.partition("@")
        parts = [p for p in path.split(".") if p]
        if not parts:
            continue
        if root is None:
            root = etree.Element(parts[0])
        elif root.tag != parts[0]:
            raise ValueError(f"XML paths must share one root element: {path!r}")
        node = root
        for part in parts[1:]:
            child = node.find(part)
            node = child if child is not None else etree.SubElement(node, part)
        if attribute:
            node.set(attribute, as_text(value))
        else:
            node.text = as_text(value)
    if root is None:
        root = etree.Element("lead")
    return bytes(etree.tostring(root, xml_declaration=True, encoding="utf-8"))


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
        if target.fields is None:
            values = {f"lead.{k}": v for k, v in values.items()}
        body = to_xml(values)
        headers.setdefault("Content-Type", "application/xml")
    else:
        body = urlencode([(k, as_text(v)) for k, v in values.items()]).encode()
        headers.setdefault("Content-Type", "application/x-www-form-urlencoded")
    auth = None
    if target.basic_username is not None or target.basic_password is not None:
        auth = (target.basic_username or "", target.basic_password or "")
    headers.setdefault("Accept", "application/json, text/xml;q=0.9, text/html;q=0.8, */*;q=0.5")
    return OutgoingRequest(method=target.method, url=url, headers=headers, body=body, auth=auth)
