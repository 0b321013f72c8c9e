"""Finding values in a recipient's answer by path, the way LeadConduit does.

JSON takes dot paths (``a.b``, ``a[0].b``, ``*`` for every item or value, ``\\.`` for a dot
in a key), XML takes XPath, HTML takes CSS selectors (optionally followed by `` @attr``)
and text takes a regex whose first group is kept (plain, or ``/re/flags`` as JavaScript
writes it). A path that is not valid for the body's kind is used as a regex on the text.
"""

from __future__ import annotations

import html
import json
import re
from dataclasses import dataclass, field
from typing import Any, Literal

from cssselect import SelectorError
from lxml import etree
from lxml.cssselect import CSSSelector

Kind = Literal["json", "xml", "html", "text"]

_JS_FLAGS = {"i": re.IGNORECASE, "m": re.MULTILINE, "s": re.DOTALL, "g": 0, "u": 0, "y": 0, "d": 0}
_SLASHED = re.compile(r"/(.+)/([A-Za-z]*)", re.DOTALL)
_JS_NAMED_GROUP = re.compile(r"\(\?<(?=[A-Za-z_])")
_HTML_ATTR = re.compile(r"\s*@([A-Za-z_:][-\w:.]*)\s*$")
_BRACKET_INDEX = re.compile(r"\[(\d+|\*)\]")
_UNESCAPED_DOT = re.compile(r"(?<!\\)\.")


@dataclass(frozen=True, slots=True)
class Document:
    """A parsed answer: its kind, its text, its parsed root, what it appends to the lead."""

    kind: Kind
    text: str
    root: Any = None
    appended: dict[str, Any] = field(default_factory=dict)


class _InvalidPath(Exception):
    """The path is not valid for the body's kind; it is used as a regex on the text."""


def values_at(doc: Document, path: str | None, *, markup: bool = False) -> list[str]:
    """Every value the path finds in the document, as text; [] for a blank path.

    With ``markup``, an HTML element a CSS selector finds gives its inner HTML (what an
    outcome search term is matched against); otherwise its text."""
    path = (path or "").strip()
    if not path:
        return []
    try:
        if doc.kind == "json":
            return _json_values(doc.root, path)
        if doc.kind == "xml":
            return _xpath_values(doc.root, path)
        if doc.kind == "html":
            return _css_values(doc.root, path, markup=markup)
    except _InvalidPath:
        pass
    return _regex_values(doc.text, path)


def _json_values(data: Any, path: str) -> list[str]:
    nodes = [data]
    for key in _dot_keys(path):
        nodes = [child for node in nodes for child in _json_children(node, key)]
    return [text for node in nodes for text in _json_texts(node)]


def _dot_keys(path: str) -> list[str]:
    path = _BRACKET_INDEX.sub(r".\1", path).lstrip(".")
    return [key.replace("\\.", ".") for key in _UNESCAPED_DOT.split(path)]


def _json_children(node: Any, key: str) -> list[Any]:
    if isinstance(node, dict):
        if key == "*":
            return list(node.values())
        return [node[key]] if key in node else []
    if isinstance(node, list):
        if key == "*":
            return list(node)
        if key.isascii() and key.isdigit() and int(key) < len(node):
            return [node[int(key)]]
    return []


def _json_texts(node: Any) -> list[str]:
    if node is None:
        return []
    if isinstance(node, list):
        return [text for item in node for text in _json_texts(item)]
    return [_scalar_text(node)]


def _scalar_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, dict):
        return json.dumps(value)
    return str(value)


def _xpath_values(root: Any, path: str) -> list[str]:
    """A relative path is evaluated from the document (``bar/cost`` finds the root
    ``bar``'s ``cost``), as LeadConduit does; lxml evaluates from the root element, so a
    relative location path is made absolute. An expression that is not a location path
    (``count(...)``) is evaluated from the root element."""
    namespaces = {prefix: uri for prefix, uri in root.nsmap.items() if prefix}
    result: Any = None
    if not path.startswith(("/", "(")):
        try:
            result = root.xpath("/" + path, namespaces=namespaces)
        except etree.XPathError:
            result = None
    if result is None:
        try:
            result = root.xpath(path, namespaces=namespaces)
        except etree.XPathError as exc:
            raise _InvalidPath from exc
    items = result if isinstance(result, list) else [result]
    return [_xpath_text(item) for item in items]


def _xpath_text(item: Any) -> str:
    if isinstance(item, etree._Element):
        return "".join(item.itertext())
    return _scalar_text(item)


def _css_values(root: Any, path: str, *, markup: bool = False) -> list[str]:
    attr = _HTML_ATTR.search(path)
    selector = path[: attr.start()] if attr else path
    try:
        elements = CSSSelector(selector, translator="html")(root)
    except SelectorError as exc:
        raise _InvalidPath from exc
    if attr is None:
        if markup:
            return [_inner_html(element) for element in elements]
        return ["".join(element.itertext()) for element in elements]
    name = attr.group(1).lower()
    return [element.get(name) for element in elements if element.get(name) is not None]


def _inner_html(element: Any) -> str:
    """The element's content as markup, without its own tags (what jQuery's ``.html()``
    gives)."""
    text = html.escape(element.text or "", quote=False)
    return text + "".join(
        etree.tostring(child, encoding="unicode", method="html") for child in element
    )


def _regex_values(text: str, path: str) -> list[str]:
    pattern = to_regex(path)
    match = pattern.search(text) if pattern else None
    if match is None:
        return []
    value = match.group(1) if match.re.groups else match.group(0)
    return [] if value is None else [value.strip()]


def to_regex(expression: str, ignore_case: bool = False) -> re.Pattern[str] | None:
    """A term as a regex: plain, or ``/re/flags``; blank is ``.*``; invalid is None."""
    expression = expression.strip()
    flags = re.IGNORECASE if ignore_case else 0
    slashed = _SLASHED.fullmatch(expression)
    if slashed and set(slashed.group(2)) <= _JS_FLAGS.keys():
        expression = slashed.group(1)
        for flag in slashed.group(2):
            flags |= _JS_FLAGS[flag]
    source = _JS_NAMED_GROUP.sub("(?P<", expression) or ".*"
    try:
        return re.compile(source, flags)
    except re.error:
        return None
