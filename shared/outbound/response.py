"""Reading a recipient's answer the way LeadConduit's custom outbound integration does.

``interpret`` turns a status, a Content-Type and a body into an ``Interpretation``: the
outcome, the reason, the price, the reference and the data appended to the lead under the
recipient id (SPEC section 5).

A 5xx is an ``error`` with the reason ``Server error`` and nothing else is read. Any other
answer is parsed by its Content-Type (or ``response_content_type_override``) as JSON (dot
paths with ``*`` and numeric indexes), XML (XPath), HTML (CSS selectors, optionally followed
by `` @attr``) or text (a regex whose first group is kept). A body that does not parse as
its declared type, or a path that is not valid for the body's kind, is read as text with
the path used as a regex (``shared.outbound.paths`` finds the values). XML is parsed
without a DTD, entities or network access; a body that declares a DOCTYPE or entities is
read as text and never expanded.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from lxml import etree
from lxml import html as lxml_html

from shared.flowconfig import ResponseRules
from shared.formats.dotpaths import add
from shared.outbound.paths import Document, Kind, to_regex, values_at

_SERVER_ERROR = "Server error"
_INVERSE = {"success": "failure", "failure": "success", "error": "success"}
_DTD = re.compile(rb"<!\s*(DOCTYPE|ENTITY)", re.IGNORECASE)
_PRICE_NOISE = re.compile(r"[\s$,]")


@dataclass(frozen=True, slots=True)
class Interpretation:
    outcome: str
    reason: str | None
    price: Decimal
    reference: str | None
    appended: dict[str, Any]
    priced: bool = False  # the answer carried a price (at price_path, or fallback_price)


class _NotParsed(Exception):
    """The body is not what its Content-Type says; it is read as text."""


def interpret(
    status: int, content_type: str | None, body: bytes, rules: ResponseRules
) -> Interpretation:
    """Outcome, reason, price, reference and appended data of one HTTP answer."""
    if 500 <= status <= 599:
        return Interpretation("error", _SERVER_ERROR, Decimal(0), None, {})
    doc = _parse_body(body, rules.response_content_type_override or content_type, content_type)
    reference = _reference(doc, rules)
    appended = {**doc.appended, **_captures(doc.text, rules.capture)}
    if reference is not None:
        # Later steps (and a ping's post) read it as ``<recipient>.reference``.
        appended["reference"] = reference
    price = _price(doc, rules)
    return Interpretation(
        outcome=_outcome(doc, rules),
        reason=_reason(doc, rules),
        price=price if price is not None else Decimal(0),
        reference=reference,
        appended=appended,
        priced=price is not None,
    )


# Parsing ---------------------------------------------------------------------------


def _parse_body(
    body: bytes, content_type: str | None, transport_type: str | None = None
) -> Document:
    """The body as its kind says; ``transport_type`` supplies a charset the other lacks."""
    media_type, charset = _media_type(content_type)
    charset = charset or _media_type(transport_type)[1]
    text = _decode(body, charset)
    kind = _kind(media_type)
    try:
        return _PARSERS[kind](body, text, charset)
    except _NotParsed:
        return Document("text", text)


def _media_type(content_type: str | None) -> tuple[str, str | None]:
    if not content_type:
        return "text/plain", None
    media_type, *params = (part.strip() for part in content_type.split(";"))
    for param in params:
        name, _, value = param.partition("=")
        if name.strip().lower() == "charset" and value.strip():
            return media_type.lower(), value.strip().strip('"')
    return media_type.lower(), None


_KIND_NAMES: Mapping[str, Kind] = {"json": "json", "xml": "xml", "html": "html", "text": "text"}


def _kind(media_type: str) -> Kind:
    """The parser for a media type (an override may name the kind alone: ``json``)."""
    if media_type in _KIND_NAMES:
        return _KIND_NAMES[media_type]
    if media_type == "application/json" or media_type.endswith("+json"):
        return "json"
    if media_type in ("text/xml", "application/xml") or media_type.endswith("+xml"):
        return "xml"
    if media_type == "text/html":
        return "html"
    return "text"


def _decode(body: bytes, charset: str | None) -> str:
    try:
        text = body.decode(charset or "utf-8", errors="replace")
    except LookupError:
        text = body.decode("utf-8", errors="replace")
    return text.removeprefix("\ufeff")


def _parse_json(body: bytes, text: str, charset: str | None) -> Document:
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise _NotParsed from exc
    if isinstance(data, list):
        data = {"array": data}
    if not isinstance(data, dict):
        raise _NotParsed
    return Document("json", text, data, data)


def _parse_xml(body: bytes, text: str, charset: str | None) -> Document:
    if _DTD.search(body):
        raise _NotParsed
    parser = etree.XMLParser(
        resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False
    )
    try:
        root = etree.fromstring(body, parser)
    except (etree.LxmlError, ValueError) as exc:
        raise _NotParsed from exc
    docinfo = root.getroottree().docinfo
    if docinfo.doctype or docinfo.internalDTD is not None:
        raise _NotParsed
    return Document("xml", text, root, {_tag_name(root): _element_value(root)})


def _parse_html(body: bytes, text: str, charset: str | None) -> Document:
    parser = lxml_html.HTMLParser(encoding=charset or "utf-8", no_network=True)
    try:
        root = lxml_html.document_fromstring(body, parser=parser)
    except (etree.LxmlError, ValueError) as exc:
        raise _NotParsed from exc
    return Document("html", text, root)


def _parse_text(body: bytes, text: str, charset: str | None) -> Document:
    return Document("text", text)


_PARSERS: Mapping[Kind, Callable[[bytes, str, str | None], Document]] = {
    "json": _parse_json,
    "xml": _parse_xml,
    "html": _parse_html,
    "text": _parse_text,
}


# XML as appended data --------------------------------------------------------------


def _tag_name(element: Any) -> str:
    local = str(etree.QName(element).localname)
    return f"{element.prefix}:{local}" if element.prefix else local


def _element_value(element: Any) -> Any:
    """Text for a bare element; else a dict of ``@attributes``, children and ``#text``."""
    children = [child for child in element if isinstance(child.tag, str)]
    text = "".join([element.text or "", *(child.tail or "" for child in element)]).strip()
    if not children and not element.attrib:
        return text
    value: dict[str, Any] = {
        f"@{etree.QName(name).localname}": attr for name, attr in element.attrib.items()
    }
    for child in children:
        add(value, _tag_name(child), _element_value(child))
    if text:
        value["#text"] = text
    return value


# The five answers ------------------------------------------------------------------


def _outcome(doc: Document, rules: ResponseRules) -> str:
    term = (rules.outcome_search_term or "").strip()
    if not term and rules.outcome_on_match is None:
        return "success"
    on_match = rules.outcome_on_match or "success"
    path = (rules.outcome_search_path or "").strip()
    scope = values_at(doc, path, markup=True) if path else [doc.text]
    if not term:  # ``.*``: anything searched matches, an empty body too
        return on_match if scope else _INVERSE[on_match]
    return on_match if _found(term, scope) else _INVERSE[on_match]


def _found(term: str, scope: list[str]) -> bool:
    """A term matches as a substring or as a regex (``ok (1)`` finds ``ok (1)``, ``a.c``
    finds ``abc``), case-insensitively; an invalid regex never matches."""
    pattern = to_regex(term, ignore_case=True)
    if pattern is None:
        return False
    literal = term.casefold()
    return any(
        pattern.search(value.strip()) or literal in value.casefold()
        for value in scope
        if value.strip()
    )


def _reason(doc: Document, rules: ResponseRules) -> str | None:
    found = sorted({value.strip() for value in values_at(doc, rules.reason_path)} - {""})
    if found:
        return ", ".join(found)
    return (rules.default_reason or "").strip() or None


def _price(doc: Document, rules: ResponseRules) -> Decimal | None:
    """The price at ``price_path``, else ``fallback_price``, else None (no price)."""
    values = values_at(doc, rules.price_path)
    price = _number(values[0]) if values else None
    return price if price is not None else rules.fallback_price


def _number(text: str) -> Decimal | None:
    """A price as the recipient wrote it (``$1,250.50``), exactly; None when it is not a
    finite number."""
    try:
        number = Decimal(_PRICE_NOISE.sub("", text))
    except InvalidOperation:
        return None
    return number if number.is_finite() else None


def _reference(doc: Document, rules: ResponseRules) -> str | None:
    values = values_at(doc, rules.reference_path)
    return (values[0].strip() or None) if values else None


def _captures(text: str, capture: Mapping[str, str]) -> dict[str, str]:
    captured: dict[str, str] = {}
    for name, regex in capture.items():
        pattern = to_regex(regex)
        match = pattern.search(text) if pattern else None
        value = None if match is None else match.group(1) if match.re.groups else match.group(0)
        if value is not None:
            captured[name] = value
    return captured
