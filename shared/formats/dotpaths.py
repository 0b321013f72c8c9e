"""Dot paths: ``a.b`` keys to nested objects (``{"a": {"b": ...}}``) and back, written once.

Form and query bodies, a recipient's JSON request, the feedback forwarded to a source,
text answers and the lookup of a declared field in what was submitted all read or write
nested data by dot path through these functions; what differs between them (a repeated
key, numeric parts, a path that cannot nest) is named by ``nest``'s options.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from itertools import pairwise
from typing import Any, Literal

#: What ``nest`` does with a key given twice: collect the values in a list, keep the last,
#: or keep the first where it is and the later one under its dotted name at the top level.
Repeated = Literal["list", "last", "dotted"]

_INDEX = re.compile(r"^\d+$")


def nest(
    items: Iterable[tuple[str, Any]],
    *,
    repeated: Repeated = "last",
    arrays: bool = False,
    strict: bool = False,
) -> dict[str, Any]:
    """Dot-path keys to nested objects: ``("a.b", "1")`` -> ``{"a": {"b": "1"}}``.

    With ``arrays``, a numeric part makes (or indexes) an array: ``items.0.id``. A path
    that cannot nest (an empty part, or a value already where an object must go) keeps its
    dotted name at the top level; with ``strict`` the path is taken as written (an empty
    part is the key ``""``) and a value in the way is a ValueError.
    """
    root: dict[str, Any] = {}
    for path, value in items:
        parts = path.split(".")
        parent = _parent(root, path, parts, arrays=arrays, strict=strict)
        key = None if parent is None else _key(parent, parts[-1], path, strict=strict)
        if key is None:
            _place(root, root, path, path, value, repeated)
        else:
            _place(root, parent, key, path, value, repeated)
    return root


def _parent(
    root: dict[str, Any], path: str, parts: list[str], *, arrays: bool, strict: bool
) -> Any:
    """The object (or array) the path's last part goes in, made as needed; None when the
    path cannot nest (never with ``strict``: a ValueError)."""
    if not strict and not all(parts):
        return None
    node: Any = root
    for part, following in pairwise(parts):
        key = _key(node, part, path, strict=strict)
        if key is None:
            return None
        child = _get(node, key)
        if child is None:
            child = [] if arrays and _INDEX.match(following) else {}
            _set(node, key, child)
        elif not (isinstance(child, dict) or (arrays and isinstance(child, list))):
            if strict:
                raise ValueError(f"cannot nest {path!r}: {part!r} holds a value, not an object")
            return None
        node = child
    return node


def _key(node: Any, part: str, path: str, *, strict: bool) -> Any:
    """The part as a key of ``node``: an index into an array, else the text itself."""
    if not isinstance(node, list):
        return part
    if _INDEX.match(part):
        return int(part)
    if strict:
        raise ValueError(f"cannot nest {path!r}: {part!r} is not an index into an array")
    return None


def _get(node: Any, key: Any) -> Any:
    if isinstance(node, list):
        return node[key] if key < len(node) else None
    return node.get(key)


def _set(node: Any, key: Any, value: Any) -> None:
    if isinstance(node, list):
        while len(node) <= key:
            node.append(None)
    node[key] = value


def _place(
    root: dict[str, Any], node: Any, key: Any, path: str, value: Any, repeated: Repeated
) -> None:
    if repeated == "last" or not _has(node, key):
        _set(node, key, value)
    elif repeated == "list":
        _set(node, key, _collected(_get(node, key), value))
    else:
        root[path] = value


def _has(node: Any, key: Any) -> bool:
    return key < len(node) if isinstance(node, list) else key in node


def _collected(existing: Any, value: Any) -> list[Any]:
    return [*existing, value] if isinstance(existing, list) else [existing, value]


def add(target: dict[str, Any], key: str, value: Any) -> None:
    """Set ``key``; a key set again collects its values in a list (``a=1&a=2``, repeated
    XML elements)."""
    target[key] = _collected(target[key], value) if key in target else value


def flatten(data: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    """Nested objects back to dot paths: ``{"a": {"b": 1}}`` -> ``("a.b", 1)``; each item
    of a list under the list's own path."""
    for key, value in data.items():
        yield from _leaves(value, f"{prefix}.{key}" if prefix else str(key))


def _leaves(value: Any, path: str) -> Iterator[tuple[str, Any]]:
    if isinstance(value, Mapping):
        yield from flatten(value, path)
    elif isinstance(value, list):
        for item in value:
            yield from _leaves(item, path)
    else:
        yield path, value


def lookup(data: Mapping[str, Any], path: str) -> Any:
    """The value at ``path``: the key itself when present, else the path walked part by
    part through nested objects; None when missing."""
    if path in data:
        return data[path]
    node: Any = data
    for part in path.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return node
