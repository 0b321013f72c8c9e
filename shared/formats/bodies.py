"""Request bodies to fields: form, JSON and XML (root dropped), query string merged over them."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any
from urllib.parse import parse_qsl
from xml.etree.ElementTree import Element, ParseError

from defusedxml import DefusedXmlException, DTDForbidden
from defusedxml.ElementTree import DefusedXMLParser

from shared.formats.dotpaths import add, nest


class BodyError(Exception):
    """The body cannot be read; ``status`` is 400 or 415."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


FORM = "application/x-www-form-urlencoded"
#: How deep a lead's fields may nest (a real lead nests two or three levels).
MAX_DEPTH = 32
_TOO_DEEP = f"fields nested more than {MAX_DEPTH} levels deep"
JSON_TYPES = ("application/json", "text/json")
XML_TYPES = ("application/xml", "text/xml")


def nest_pairs(pairs: Iterable[tuple[str, str]]) -> dict[str, Any]:
    """Form pairs to fields; dot-notation keys nest (``a.b=1`` -> ``{"a": {"b": "1"}}``) and
    a repeated key becomes a list. ``BodyError`` (400) past ``MAX_DEPTH`` levels."""
    pairs = list(pairs)
    if any(key.count(".") >= MAX_DEPTH for key, _ in pairs):
        raise BodyError(400, _TOO_DEEP)
    return nest(pairs, repeated="list")


def _check_depth(value: Any) -> None:
    """``BodyError`` (400) when containers nest past ``MAX_DEPTH`` (read without recursion:
    a hostile body may nest thousands of levels)."""
    stack = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        children = list(item.values() if isinstance(item, dict) else item)
        if children and depth >= MAX_DEPTH:  # its values would sit MAX_DEPTH + 1 keys down
            raise BodyError(400, _TOO_DEEP)
        stack.extend((c, depth + 1) for c in children if isinstance(c, (dict, list)))


def merge_over(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in top.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge_over(merged[key], value)
        else:
            merged[key] = value
    return merged


def _xml_element(element: Element) -> Any:
    children = list(element)
    if not children and not element.attrib:
        return (element.text or "").strip()
    value: dict[str, Any] = dict(element.attrib)
    if not children:
        text = (element.text or "").strip()
        if text:
            value["value"] = text
        return value
    for child in children:
        add(value, _local(child.tag), _xml_element(child))
    return value


def _local(tag: Any) -> str:
    text = str(tag)
    return text.rsplit("}", 1)[-1]


class _XmlParser(DefusedXMLParser):
    """defusedxml's parser, which refuses entities (bombs) and external references, also
    refusing a DOCTYPE that names an external DTD; a DOCTYPE alone is harmless."""

    def __init__(self) -> None:
        super().__init__(forbid_dtd=True)

    def defused_start_doctype_decl(
        self, name: str, sysid: str | None, pubid: str | None, has_internal_subset: int
    ) -> None:
        if sysid is not None or pubid is not None:
            raise DTDForbidden(name, sysid, pubid)


def parse_xml(body: bytes) -> dict[str, Any]:
    try:
        parser = _XmlParser()
        parser.feed(body)
        root = parser.close()
    except DefusedXmlException as exc:
        raise BodyError(400, f"XML refused: {exc}") from None
    except ParseError as exc:
        raise BodyError(400, f"invalid XML: {exc}") from None
    elements = [(root, 0)]
    while elements:
        element, depth = elements.pop()
        if depth > MAX_DEPTH:
            raise BodyError(400, _TOO_DEEP)
        elements.extend((child, depth + 1) for child in element)
    fields: dict[str, Any] = dict(root.attrib)
    for child in root:
        add(fields, _local(child.tag), _xml_element(child))
    return fields


def without_nul(value: Any) -> Any:
    """``value`` with NUL characters dropped from every key and string: they mean nothing
    in a lead and PostgreSQL cannot store them."""
    if isinstance(value, str):
        return value.replace("\x00", "") if "\x00" in value else value
    if isinstance(value, dict):
        return {without_nul(k): without_nul(v) for k, v in value.items()}
    if isinstance(value, list):
        return [without_nul(v) for v in value]
    return value


def parse_body(content_type: str | None, body: bytes, charset: str | None = None) -> dict[str, Any]:
    """The fields of a form, JSON or XML body (NUL characters dropped)."""
    return without_nul(_parse_body(content_type, body, charset))


def _parse_body(content_type: str | None, body: bytes, charset: str | None) -> dict[str, Any]:
    if not body:
        return {}  # no body at all (the fields may come in the query string)
    if not content_type:
        raise BodyError(415, "a Content-Type header is required")
    media = content_type.split(";")[0].strip().lower()
    if media not in (FORM, *JSON_TYPES, *XML_TYPES) and not media.endswith(("+json", "+xml")):
        raise BodyError(415, f"unsupported Content-Type '{media}' (use form, JSON or XML)")
    if not body.strip():
        return {}
    encoding = charset or "utf-8"
    if media == FORM:
        try:
            text = body.decode(encoding)
        except (UnicodeDecodeError, LookupError) as exc:
            raise BodyError(400, f"invalid form body: {exc}") from None
        return nest_pairs(parse_qsl(text, keep_blank_values=True))
    if media in JSON_TYPES or media.endswith("+json"):
        try:
            data = json.loads(body.decode(encoding), strict=False)
        except (UnicodeDecodeError, LookupError, ValueError) as exc:
            raise BodyError(400, f"invalid JSON: {exc}") from None
        except RecursionError:
            raise BodyError(400, f"invalid JSON: {_TOO_DEEP}") from None
        if not isinstance(data, dict):
            raise BodyError(400, "invalid JSON: the body must be an object")
        _check_depth(data)
        return data
    if media in XML_TYPES or media.endswith("+xml"):
        return parse_xml(body)
    raise BodyError(415, f"unsupported Content-Type '{media}' (use form, JSON or XML)")
