"""Dot paths, written once: how each caller's options nest keys, and the way back."""

from __future__ import annotations

from typing import Any

import pytest

from shared.formats.dotpaths import add, flatten, lookup, nest
from shared.formats.xmlwrite import from_mapping, from_paths


@pytest.mark.parametrize(
    ("pairs", "options", "expected"),
    [
        # form and query bodies: a repeated key collects its values
        ([("a.b", "1"), ("a.c", "2")], {"repeated": "list"}, {"a": {"b": "1", "c": "2"}}),
        ([("a", "1"), ("a", "2"), ("a", "3")], {"repeated": "list"}, {"a": ["1", "2", "3"]}),
        ([("a", "1"), ("a.b", "2")], {"repeated": "list"}, {"a": "1", "a.b": "2"}),
        ([("a..b", "1"), (".a", "2")], {"repeated": "list"}, {"a..b": "1", ".a": "2"}),
        # feedback to a source: the first value stays, a later one keeps its dotted name
        ([("a.b", 1), ("a.b", 2)], {"repeated": "dotted"}, {"a": {"b": 1}, "a.b": 2}),
        # a recipient's JSON request: numeric parts make arrays, paths taken as written
        (
            [("items.1.id", "b"), ("items.0.id", "a")],
            {"arrays": True, "strict": True},
            {"items": [{"id": "a"}, {"id": "b"}]},
        ),
        ([("a..b", 1)], {"arrays": True, "strict": True}, {"a": {"": {"b": 1}}}),
        ([("a", None), ("a.b", 1)], {"arrays": True, "strict": True}, {"a": {"b": 1}}),
    ],
)
def test_nest_follows_its_callers_options(
    pairs: list[tuple[str, Any]], options: dict[str, Any], expected: dict[str, Any]
) -> None:
    assert nest(pairs, **options) == expected


@pytest.mark.parametrize("pairs", [[("a", "x"), ("a.b", 1)], [("a.0", 1), ("a.b", 2)]])
def test_a_strict_path_that_cannot_nest_is_an_error(pairs: list[tuple[str, Any]]) -> None:
    with pytest.raises(ValueError, match="cannot nest"):
        nest(pairs, arrays=True, strict=True)


def test_add_collects_a_repeated_key_in_a_list() -> None:
    target: dict[str, Any] = {}
    for value in ("1", "2", "3"):
        add(target, "a", value)
    assert target == {"a": ["1", "2", "3"]}


def test_flatten_gives_dot_paths_and_repeats_a_list_under_its_own_path() -> None:
    data = {"type": "return", "lead": {"name": "Ann", "tags": ["x", "y"]}}
    assert list(flatten(data)) == [
        ("type", "return"),
        ("lead.name", "Ann"),
        ("lead.tags", "x"),
        ("lead.tags", "y"),
    ]


@pytest.mark.parametrize(
    ("path", "expected"),
    [("a.b", 1), ("a.b.c", None), ("x.y", "dotted key"), ("a", {"b": 1})],
)
def test_lookup_tries_the_key_itself_then_walks_the_parts(path: str, expected: Any) -> None:
    assert lookup({"a": {"b": 1}, "x.y": "dotted key"}, path) == expected


def test_xml_from_paths_shares_one_root_and_sets_attributes() -> None:
    body = from_paths({"lead.name": "Ann", "lead.name@type": "first"}, str, default_root="lead")
    assert body == (
        b"<?xml version='1.0' encoding='utf-8'?>\n<lead><name type=\"first\">Ann</name></lead>"
    )
    with pytest.raises(ValueError, match="one root"):
        from_paths({"a.b": 1, "c.d": 2}, str, default_root="lead")
    assert from_paths({}, str, default_root="lead").endswith(b"<lead/>")


def test_xml_from_a_mapping_repeats_lists_and_leaves_out_invalid_names() -> None:
    body = from_mapping("feedback", {"tag": ["a", "b"], "1bad": "x", "lead": {"id": 7}}, str)
    assert body.endswith(b"<feedback><tag>a</tag><tag>b</tag><lead><id>7</id></lead></feedback>")
