"""Bodies from outside (SPEC sections 3 and 8): however deep a hostile body nests, it is
refused with a 400 and the reason, never an internal error."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from shared.formats.bodies import MAX_DEPTH, BodyError, nest_pairs, parse_body

DEEP = 50_000


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("application/json", b"[" * DEEP + b"]" * DEEP),
        ("application/json", b'{"a":' * DEEP + b"1" + b"}" * DEEP),
        ("application/json", b'{"a":' * (MAX_DEPTH + 2) + b"1" + b"}" * (MAX_DEPTH + 2)),
        ("application/xml", b"<a>" * DEEP + b"</a>" * DEEP),
        ("text/xml", b"<lead>" + b"<a>" * (MAX_DEPTH + 2) + b"</a>" * (MAX_DEPTH + 2) + b"</lead>"),
        ("application/x-www-form-urlencoded", b"a" + b".a" * DEEP + b"=1"),
    ],
)
def test_a_body_nested_too_deep_is_refused_with_a_400(content_type: str, body: bytes) -> None:
    with pytest.raises(BodyError) as refused:
        parse_body(content_type, body)
    assert refused.value.status == 400
    assert f"nested more than {MAX_DEPTH} levels deep" in refused.value.reason


def test_a_query_string_nested_too_deep_is_refused_too() -> None:
    with pytest.raises(BodyError):
        nest_pairs([("a" + ".a" * MAX_DEPTH, "1")])


def test_fields_nested_a_few_levels_are_read() -> None:
    nested = b'{"a": {"b": {"c": [{"d": "x"}]}}}'
    assert parse_body("application/json", nested) == {"a": {"b": {"c": [{"d": "x"}]}}}
    assert parse_body("text/xml", b"<lead><a><b>x</b></a></lead>") == {"a": {"b": "x"}}


def nested_json(levels: int) -> bytes:
    """A value ``levels`` keys down: {"a": {"a": ... 1}}."""
    return b'{"a":' * levels + b"1" + b"}" * levels


def nested_xml(levels: int) -> bytes:
    return b"<lead>" + b"<a>" * levels + b"1" + b"</a>" * levels + b"</lead>"


def nested_form(levels: int) -> bytes:
    return ".".join(["a"] * levels).encode() + b"=1"


@pytest.mark.parametrize(
    ("content_type", "body_of"),
    [
        ("application/json", nested_json),
        ("application/xml", nested_xml),
        ("application/x-www-form-urlencoded", nested_form),
    ],
)
def test_every_format_reads_a_value_32_keys_down_and_refuses_one_33_down(
    content_type: str, body_of: Callable[[int], bytes]
) -> None:
    assert parse_body(content_type, body_of(MAX_DEPTH))
    with pytest.raises(BodyError):
        parse_body(content_type, body_of(MAX_DEPTH + 1))


def test_a_body_of_blanks_needs_a_supported_content_type_and_no_body_needs_none() -> None:
    with pytest.raises(BodyError) as refused:
        parse_body("text/csv", b"   ")
    assert refused.value.status == 415
    with pytest.raises(BodyError):
        parse_body(None, b" ")
    assert parse_body("application/json", b"  ") == {}
    assert parse_body(None, b"") == {}


def test_xml_with_a_harmless_doctype_is_read() -> None:
    body = b'<?xml version="1.0"?><!DOCTYPE lead><lead><first_name>Dee</first_name></lead>'
    assert parse_body("application/xml", body) == {"first_name": "Dee"}


@pytest.mark.parametrize(
    "body",
    [
        b'<?xml version="1.0"?><!DOCTYPE l [<!ENTITY x "A"><!ENTITY y "&x;&x;">]><l>&y;</l>',
        b'<?xml version="1.0"?><!DOCTYPE l [<!ENTITY e SYSTEM "file:///etc/passwd">]><l>&e;</l>',
        b'<?xml version="1.0"?><!DOCTYPE l SYSTEM "http://127.0.0.1:1/l.dtd"><l><a>&e;</a></l>',
        b'<?xml version="1.0"?><!DOCTYPE l SYSTEM "http://127.0.0.1:1/l.dtd"><l><a>A</a></l>',
        b'<?xml version="1.0"?><!DOCTYPE l PUBLIC "-//X//Y" "file:///etc/passwd"><l><a>A</a></l>',
    ],
)
def test_xml_declaring_entities_or_external_references_is_refused(body: bytes) -> None:
    with pytest.raises(BodyError) as refused:
        parse_body("application/xml", body)
    assert refused.value.status == 400
