"""Reading a recipient's answer: one table of vectors, one row per rule of SPEC section 5."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import pytest

from shared.flowconfig import ResponseRules
from shared.outbound.response import Interpretation, interpret

JSON = "application/json"
XML = "text/xml"
HTML = "text/html"
TEXT = "text/plain"
UNCHECKED: dict[str, Any] = {"unchecked": True}


@dataclass(frozen=True)
class Vector:
    status: int
    content_type: str | None
    body: bytes
    rules: dict[str, Any]
    outcome: str
    reason: str | None = None
    price: float = 0.0
    reference: str | None = None
    appended: dict[str, Any] = field(default_factory=lambda: UNCHECKED)


def row(
    name: str,
    status: int,
    content_type: str | None,
    body: str | dict[str, Any] | list[Any],
    rules: dict[str, Any],
    outcome: str,
    **expected: Any,
) -> Any:
    raw = body if isinstance(body, str) else json.dumps(body)
    return pytest.param(
        Vector(status, content_type, raw.encode(), rules, outcome, **expected), id=name
    )


ORDER = {
    "status": "accepted",
    "id": "A-1",
    "price": "$12.00",
    "errors": [{"message": "b"}, {"message": "a"}],
}
XML_RESULT = (
    '<?xml version="1.0"?><result id="r-9"><outcome>success</outcome>'
    "<reason><![CDATA[ Duplicate <lead> ]]></reason><reason>Bad phone</reason>"
    "<price>7.25</price></result>"
)
HTML_PAGE = (
    "<html><body><div class='status' data-outcome='OK'> Accepted </div>"
    "<span class='why'>dup</span><span class='why'> </span></body></html>"
)
BILLION = '<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x "ACC"><!ENTITY y "&x;&x;">]><r>&y;</r>'

VECTORS = [
    # HTTP status
    row(
        "a 503 is an error with the reason Server error and nothing else read",
        503,
        JSON,
        ORDER,
        {
            "price_path": "price",
            "reference_path": "id",
            "capture": {"s": "accepted"},
            "default_reason": "x",
        },
        "error",
        reason="Server error",
        price=0.0,
        appended={},
    ),
    row(
        "a 500 is an error even when the body carries the success term",
        500,
        TEXT,
        "accepted",
        {"outcome_search_term": "accepted"},
        "error",
        reason="Server error",
    ),
    row("a 599 is still a server error", 599, TEXT, "", {}, "error", reason="Server error"),
    row(
        "a 404 is parsed like any answer",
        404,
        JSON,
        {"status": "rejected", "msg": "not found"},
        {"outcome_search_term": "accepted", "outcome_search_path": "status", "reason_path": "msg"},
        "failure",
        reason="not found",
    ),
    row(
        "a 499 is parsed, not a server error",
        499,
        TEXT,
        "accepted",
        {"outcome_search_term": "accepted"},
        "success",
    ),
    # JSON paths
    row("a JSON body is appended whole", 200, JSON, ORDER, {}, "success", appended=ORDER),
    row(
        "a JSON wildcard path collects every message",
        200,
        JSON,
        ORDER,
        {"reason_path": "errors.*.message"},
        "success",
        reason="a, b",
    ),
    row(
        "a JSON numeric index picks one element",
        200,
        JSON,
        ORDER,
        {"reason_path": "errors.1.message"},
        "success",
        reason="a",
    ),
    row(
        "a JSON top-level array is addressed as array",
        200,
        JSON,
        [{"id": 7}, {"id": 8}],
        {"reference_path": "array.1.id"},
        "success",
        reference="8",
        appended={"array": [{"id": 7}, {"id": 8}], "reference": "8"},
    ),
    row(
        "a JSON wildcard over a top-level array searches every item",
        200,
        JSON,
        [{"status": "no"}, {"status": "yes"}],
        {"outcome_search_term": "yes", "outcome_search_path": "array.*.status"},
        "success",
    ),
    row(
        "a +json content type is JSON",
        200,
        "application/vnd.api+json; charset=utf-8",
        {"data": {"ref": "Q1"}},
        {"reference_path": "data.ref"},
        "success",
        reference="Q1",
    ),
    row(
        "a JSON path that finds nothing gives the inverse outcome",
        200,
        JSON,
        ORDER,
        {"outcome_search_term": "accepted", "outcome_search_path": "nope.status"},
        "failure",
    ),
    # XML paths
    row(
        "an XML XPath finds the outcome element's text",
        200,
        XML,
        XML_RESULT,
        {"outcome_search_term": "success", "outcome_search_path": "/result/outcome"},
        "success",
        price=0.0,
    ),
    row(
        "XML reasons are CDATA-unwrapped, trimmed and sorted",
        200,
        XML,
        XML_RESULT,
        {"reason_path": "//reason"},
        "success",
        reason="Bad phone, Duplicate <lead>",
    ),
    row(
        "an XML attribute is read through @ in XPath",
        200,
        "application/xml",
        XML_RESULT,
        {"reference_path": "/result/@id", "price_path": "/result/price"},
        "success",
        price=7.25,
        reference="r-9",
    ),
    row(
        "a relative XPath is evaluated from the document",
        200,
        XML,
        "<bar><cost>1.5</cost></bar>",
        {"price_path": "bar/cost/text()"},
        "success",
        price=1.5,
    ),
    row(
        "a relative XPath does not start below the root element",
        200,
        XML,
        "<bar><cost>1.5</cost></bar>",
        {"price_path": "cost/text()", "fallback_price": 9},
        "success",
        price=9.0,
    ),
    row(
        "absolute and descendant XPaths still find the price",
        200,
        XML,
        "<bar><cost>1.5</cost></bar>",
        {"price_path": "//cost/text()", "reference_path": "/bar/cost/text()"},
        "success",
        price=1.5,
        reference="1.5",
    ),
    row(
        "an XPath function of a relative path is evaluated too",
        200,
        XML,
        "<bar><cost>1.5</cost><cost>2</cost></bar>",
        {"reason_path": "count(//cost)"},
        "success",
        reason="2",
    ),
    row(
        "an XML body is appended as a dict with @attributes and lists",
        200,
        XML,
        XML_RESULT,
        {},
        "success",
        appended={
            "result": {
                "@id": "r-9",
                "outcome": "success",
                "reason": ["Duplicate <lead>", "Bad phone"],
                "price": "7.25",
            }
        },
    ),
    row(
        "a +xml content type is XML",
        200,
        "application/soap+xml",
        "<a><b>ok</b></a>",
        {"outcome_search_term": "^ok$", "outcome_search_path": "/a/b"},
        "success",
        appended={"a": {"b": "ok"}},
    ),
    row(
        "an invalid XPath is read as text with the path as a regex",
        200,
        XML,
        XML_RESULT,
        {"reason_path": r"outcome>(\w+)<"},
        "success",
        reason="success",
    ),
    row(
        "malformed XML is read as text and not appended",
        200,
        XML,
        "<result>ok</reslt>",
        {"reason_path": r"<result>(\w+)<"},
        "success",
        reason="ok",
        appended={},
    ),
    row(
        "an XML DOCTYPE is refused and its entities never expanded",
        200,
        XML,
        BILLION,
        {"outcome_search_term": "accacc", "reason_path": r"<r>(.*)</r>"},
        "failure",
        reason="&y;",
        appended={},
    ),
    # HTML paths
    row(
        "an HTML CSS selector reads the element's text",
        200,
        HTML,
        HTML_PAGE,
        {
            "outcome_search_term": "accepted",
            "outcome_search_path": "div.status",
            "reason_path": "span.why",
        },
        "success",
        reason="dup",
        appended={},
    ),
    row(
        "an HTML selector followed by @attr reads the attribute",
        200,
        HTML,
        HTML_PAGE,
        {"outcome_search_term": "^ok$", "outcome_search_path": "div.status @data-outcome"},
        "success",
    ),
    row(
        "a 4xx HTML page is parsed",
        422,
        "text/html; charset=utf-8",
        HTML_PAGE,
        {"outcome_search_term": "rejected", "outcome_search_path": "div.status"},
        "failure",
    ),
    row(
        "an invalid CSS selector is read as text with the path as a regex",
        200,
        HTML,
        HTML_PAGE,
        {"reason_path": r"class='why'>(\w+)<"},
        "success",
        reason="dup",
    ),
    row(
        "an HTML selector gives the outcome term the element's inner HTML",
        200,
        HTML,
        '<html><body><div id="bar">foo</div></body></html>',
        {"outcome_search_term": 'id="[a-z]+">foo<', "outcome_search_path": "body"},
        "success",
    ),
    row(
        "an HTML selector's inner HTML excludes the element's own tag",
        200,
        HTML,
        '<html><body><div id="bar">foo</div></body></html>',
        {"outcome_search_term": "<div", "outcome_search_path": "div"},
        "failure",
    ),
    row(
        "an HTML reason and price stay the element's text",
        200,
        HTML,
        "<html><body><p class='r'><b>Too</b> late</p><p class='p'><i>$3.25</i></p></body></html>",
        {"reason_path": "p.r", "price_path": "p.p"},
        "success",
        reason="Too late",
        price=3.25,
    ),
    # text paths
    row(
        "a text path is a regex whose first group is kept",
        200,
        TEXT,
        "Status: OK\nPrice: $4.50\nRef: Z-12",
        {"price_path": r"Price: (\S+)", "reference_path": r"Ref: ([\w-]+)"},
        "success",
        price=4.5,
        reference="Z-12",
        appended={"reference": "Z-12"},
    ),
    row(
        "a text path without a group keeps the whole match",
        200,
        TEXT,
        "ref Z-12 end",
        {"reference_path": r"Z-\d+"},
        "success",
        reference="Z-12",
    ),
    row(
        "a missing content type is text",
        200,
        None,
        '{"status": "ok"}',
        {"reason_path": r'"status": "(\w+)"'},
        "success",
        reason="ok",
        appended={},
    ),
    # content type override and parse failures
    row(
        "the content type override makes a text/plain body JSON",
        200,
        TEXT,
        {"ref": "R7"},
        {"response_content_type_override": JSON, "reference_path": "ref"},
        "success",
        reference="R7",
        appended={"ref": "R7", "reference": "R7"},
    ),
    row(
        "the content type override may name the kind alone",
        200,
        TEXT,
        {"ref": "R7"},
        {"response_content_type_override": "json", "reference_path": "ref"},
        "success",
        reference="R7",
        appended={"ref": "R7", "reference": "R7"},
    ),
    row(
        "the content type override makes a JSON body text",
        200,
        JSON,
        {"ref": "R7"},
        {"response_content_type_override": TEXT, "reference_path": r'"ref": "(\w+)"'},
        "success",
        reference="R7",
        appended={"reference": "R7"},
    ),
    row(
        "malformed JSON is read as text with the path as a regex",
        200,
        JSON,
        '{"status": "accepted", "id": "X1"',
        {
            "outcome_search_term": "accepted",
            "outcome_search_path": r'"status": "(\w+)"',
            "reference_path": r'"id": "(\w+)"',
        },
        "success",
        reference="X1",
        appended={"reference": "X1"},
    ),
    # outcome search term
    row(
        "a substring term matches case-insensitively in the whole body",
        200,
        TEXT,
        "Lead ACCEPTED",
        {"outcome_search_term": "accepted"},
        "success",
    ),
    row(
        "an absent substring gives failure",
        200,
        TEXT,
        "Lead rejected",
        {"outcome_search_term": "accepted"},
        "failure",
    ),
    row(
        "a term is found as a substring even where its regex would not match it",
        200,
        TEXT,
        "Status: OK (1) - lead $5.00 accepted",
        {"outcome_search_term": "ok (1) - lead $5.00"},
        "success",
    ),
    row(
        "a regex term is searched in the value at the path",
        200,
        JSON,
        {"status": "accepted_with_notes"},
        {"outcome_search_term": "^accepted(_\\w+)?$", "outcome_search_path": "status"},
        "success",
    ),
    row(
        "a /re/i term is a regex with its flags",
        200,
        TEXT,
        "Lead Accepted",
        {"outcome_search_term": "/acc.+ted/i"},
        "success",
    ),
    row(
        "a /re/m term honours multiline",
        200,
        TEXT,
        "status\nOK\nend",
        {"outcome_search_term": "/^ok$/m"},
        "success",
    ),
    row(
        "an invalid regex term never matches",
        200,
        TEXT,
        "accepted(",
        {"outcome_search_term": "accepted("},
        "failure",
    ),
    row(
        "an invalid regex term with on-match failure gives success",
        200,
        TEXT,
        "accepted(",
        {"outcome_search_term": "accepted(", "outcome_on_match": "failure"},
        "success",
    ),
    row(
        "a matched term with on-match failure gives failure",
        200,
        TEXT,
        "Duplicate lead",
        {"outcome_search_term": "duplicate", "outcome_on_match": "failure"},
        "failure",
    ),
    row(
        "an unmatched term with on-match failure gives success",
        200,
        TEXT,
        "Lead accepted",
        {"outcome_search_term": "duplicate", "outcome_on_match": "failure"},
        "success",
    ),
    row(
        "a matched term with on-match error gives error",
        200,
        TEXT,
        "Exception: db down",
        {"outcome_search_term": "exception", "outcome_on_match": "error"},
        "error",
    ),
    row(
        "an unmatched term with on-match error gives success",
        200,
        TEXT,
        "ok",
        {"outcome_search_term": "exception", "outcome_on_match": "error"},
        "success",
    ),
    row(
        "no term and no on-match is success whatever the body says",
        200,
        TEXT,
        "REJECTED",
        {},
        "success",
    ),
    row(
        "an on-match without a term matches everything",
        200,
        TEXT,
        "anything",
        {"outcome_on_match": "failure"},
        "failure",
    ),
    row(
        "an on-match without a term matches an empty body too (the term is .*)",
        204,
        TEXT,
        "",
        {"outcome_on_match": "failure"},
        "failure",
    ),
    row(
        "an on-match without a term finds nothing where its path is absent",
        200,
        JSON,
        {"other": 1},
        {"outcome_on_match": "failure", "outcome_search_path": "status"},
        "success",
    ),
    # reasons
    row(
        "reasons are trimmed, emptied ones dropped, de-duplicated, sorted and joined",
        200,
        JSON,
        {"errors": ["  zip  ", "", "   ", "Age", "zip", None]},
        {"reason_path": "errors"},
        "success",
        reason="Age, zip",
    ),
    row(
        "the default reason applies on failure when no reason is found",
        200,
        JSON,
        {"status": "rejected"},
        {
            "outcome_search_term": "accepted",
            "outcome_search_path": "status",
            "reason_path": "why",
            "default_reason": " Rejected by buyer ",
        },
        "failure",
        reason="Rejected by buyer",
    ),
    row(
        "the default reason applies on success when no reason is found",
        200,
        TEXT,
        "ok",
        {"outcome_search_term": "ok", "default_reason": "Accepted"},
        "success",
        reason="Accepted",
    ),
    row(
        "a found reason wins over the default reason and is kept on success",
        200,
        JSON,
        {"status": "accepted", "note": "queued"},
        {
            "outcome_search_term": "accepted",
            "outcome_search_path": "status",
            "reason_path": "note",
            "default_reason": "unused",
        },
        "success",
        reason="queued",
    ),
    # price and reference
    row(
        "a price with dollar sign and thousands separator is a number",
        200,
        JSON,
        {"bid": "$1,234.50"},
        {"price_path": "bid"},
        "success",
        price=1234.5,
    ),
    row(
        "a JSON number is a price as it is",
        200,
        JSON,
        {"bid": 12.5},
        {"price_path": "bid", "fallback_price": 3},
        "success",
        price=12.5,
    ),
    row(
        "an unreadable price gives the fallback price",
        200,
        JSON,
        {"bid": "n/a"},
        {"price_path": "bid", "fallback_price": 3},
        "success",
        price=3.0,
    ),
    row(
        "a price path that finds nothing gives the fallback price",
        200,
        JSON,
        {},
        {"price_path": "bid", "fallback_price": 2.5},
        "success",
        price=2.5,
    ),
    row(
        "no price path and no fallback price is 0",
        200,
        JSON,
        {"bid": "9"},
        {},
        "success",
        price=0.0,
    ),
    row(
        "a reference path keeps the first value as text",
        200,
        JSON,
        {"leads": [{"id": 101}, {"id": 102}]},
        {"reference_path": "leads.*.id"},
        "success",
        reference="101",
    ),
    row(
        "the reference is appended under the recipient id as reference",
        200,
        JSON,
        {"quote": {"id": "Q-77"}},
        {"reference_path": "quote.id"},
        "success",
        reference="Q-77",
        appended={"quote": {"id": "Q-77"}, "reference": "Q-77"},
    ),
    row(
        "a reference found in a text body is appended alone",
        200,
        TEXT,
        "ok ref=T-5",
        {"reference_path": r"ref=([\w-]+)"},
        "success",
        reference="T-5",
        appended={"reference": "T-5"},
    ),
    # captures
    row(
        "a capture on a text body is all that is appended",
        200,
        TEXT,
        "OK lead_id=L-55 token=abc",
        {"capture": {"lead_id": r"lead_id=([\w-]+)", "token": r"token=\w+"}},
        "success",
        appended={"lead_id": "L-55", "token": "token=abc"},
    ),
    row(
        "a capture on a JSON body is added beside the body",
        200,
        JSON,
        {"id": "A-1"},
        {"capture": {"short": r'"id": "A-(\d)"', "absent": r"nothing (here)"}},
        "success",
        appended={"id": "A-1", "short": "1"},
    ),
    row(
        "a capture on an HTML body is appended alone",
        200,
        HTML,
        HTML_PAGE,
        {"capture": {"state": r"data-outcome='(\w+)'"}},
        "success",
        appended={"state": "OK"},
    ),
]


@pytest.mark.parametrize("vector", VECTORS)
def test_a_recipient_answer_is_read_the_way_leadconduit_reads_it(vector: Vector) -> None:
    # given
    rules = ResponseRules(**vector.rules)

    # when
    result = interpret(vector.status, vector.content_type, vector.body, rules)

    # then
    assert (result.outcome, result.reason, result.price, result.reference) == (
        vector.outcome,
        vector.reason,
        vector.price,
        vector.reference,
    )
    if vector.appended is not UNCHECKED:
        assert result.appended == vector.appended


def test_the_table_covers_at_least_forty_vectors() -> None:
    assert len(VECTORS) >= 40


def test_an_interpretation_cannot_be_changed_after_it_is_made() -> None:
    # given
    result = interpret(200, TEXT, b"ok", ResponseRules())

    # when / then
    with pytest.raises(AttributeError):
        result.outcome = "failure"  # type: ignore[misc]
    assert result == Interpretation("success", None, Decimal(0), None, {})


def test_an_xml_doctype_hidden_by_utf16_is_still_refused() -> None:
    # given
    body = BILLION.replace('version="1.0"', 'version="1.0" encoding="UTF-16"').encode("utf-16")
    rules = ResponseRules(outcome_search_term="accacc", outcome_search_path="/r")

    # when
    result = interpret(200, XML, body, rules)

    # then
    assert (result.outcome, result.appended) == ("failure", {})


def test_a_price_is_read_to_the_cent_without_passing_through_float() -> None:
    # given an answer whose price has no exact binary form
    rules = ResponseRules(price_path="bid")

    # when
    result = interpret(200, "application/json", b'{"bid": "0.10"}', rules)

    # then
    assert result.price == Decimal("0.10")
    assert isinstance(result.price, Decimal)


def test_an_answer_says_whether_it_carried_a_price_an_answered_0_included() -> None:
    from shared.flowconfig import ResponseRules
    from shared.outbound.response import interpret

    rules = ResponseRules(price_path="price")
    assert interpret(200, "application/json", b'{"price": 0}', rules).priced
    assert not interpret(200, "application/json", b'{"other": 1}', rules).priced
    fallback = ResponseRules(price_path="price", fallback_price=Decimal("2.5"))
    read = interpret(200, "application/json", b"{}", fallback)
    assert (read.priced, read.price) == (True, Decimal("2.5"))
