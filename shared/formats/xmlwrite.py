"""XML documents written from data, written once: from dot paths with ``@attr`` (a
recipient's XML request) or from nested mappings (feedback forwarded to a source, answers).

Each caller says how a value becomes element text (``text``); every document starts with
an XML declaration and is UTF-8.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from lxml import etree

Text = Callable[[Any], str]


def from_paths(values: Mapping[str, Any], text: Text, *, default_root: str) -> bytes:
    """Dot paths include the root element (``lead.contact.name``); ``a.b@attr`` sets an
    attribute on ``b``. Every path shares one root (a ValueError otherwise); no paths give
    an empty ``default_root`` element."""
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
            node.set(attribute, text(value))
        else:
            node.text = text(value)
    if root is None:
        root = etree.Element(default_root)
    return document(root)


def from_mapping(tag: str, data: Mapping[str, Any], text: Text, *, pretty: bool = False) -> bytes:
    """A ``tag`` element holding one element per key, nested mappings nested, a list as
    the key's element repeated; a key that is not a valid element name is left out."""
    root = etree.Element(tag)
    _children(root, data, text)
    return document(root, pretty=pretty)


def _children(parent: Any, data: Mapping[str, Any], text: Text) -> None:
    for key, value in data.items():
        for item in value if isinstance(value, list) else [value]:
            try:
                child = etree.SubElement(parent, str(key))
            except ValueError:
                break  # not a valid element name: left out of the document
            if isinstance(item, Mapping):
                _children(child, item, text)
            else:
                child.text = text(item)


def document(root: Any, *, pretty: bool = False) -> bytes:
    return bytes(etree.tostring(root, xml_declaration=True, encoding="utf-8", pretty_print=pretty))
