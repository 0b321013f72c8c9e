"""The request that forwards accepted feedback to a source, in each of its formats."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qsl

import pytest
from lxml import etree

from services.feedback.forward import (
    build_forward_request,
    feedback_body,
    nested,
    outcome_of,
)
from shared.flowconfig import SourceFeedback
from shared.outbound.send import Answer, transient_reason

FIELDS = {"first_name": "Ann", "phone_1": "5125551212", "mortgage.loan.amount": 250000}


def body(reason: str | None = "Wrong number") -> dict[str, Any]:
    return feedback_body(
        kind="return", reason=reason, lead_id="L1", source_event_id="E0", fields=FIELDS
    )


def target(format: str, **extra: Any) -> SourceFeedback:
    return SourceFeedback.model_validate(
        {"url": "http://source.test/fb", "format": format, **extra}
    )


def test_a_json_source_gets_the_feedback_with_the_lead_fields_nested_under_lead() -> None:
    request = build_forward_request(target("json"), body(), "F1")

    assert request.method == "POST"
    assert request.url == "http://source.test/fb"
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["Idempotency-Key"] == "F1"
    assert json.loads(request.body or b"") == {
        "type": "return",
        "reason": "Wrong number",
        "lead_id": "L1",
        "event_id": "E0",
        "lead": {
            "first_name": "Ann",
            "phone_1": "5125551212",
            "mortgage": {"loan": {"amount": 250000}},
        },
    }


def test_a_form_source_gets_dot_keys_for_the_lead_fields() -> None:
    request = build_forward_request(target("form"), body(), "F1")

    assert request.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert parse_qsl((request.body or b"").decode()) == [
        ("type", "return"),
        ("reason", "Wrong number"),
        ("lead_id", "L1"),
        ("event_id", "E0"),
        ("lead.first_name", "Ann"),
        ("lead.phone_1", "5125551212"),
        ("lead.mortgage.loan.amount", "250000"),
    ]


def test_an_xml_source_gets_a_feedback_document() -> None:
    request = build_forward_request(target("xml", headers={"X-Token": "t"}), body(), "F1")

    assert request.headers["Content-Type"] == "application/xml"
    assert request.headers["X-Token"] == "t"
    root = etree.fromstring(request.body or b"")
    assert root.tag == "feedback"
    assert root.findtext("type") == "return"
    assert root.findtext("reason") == "Wrong number"
    assert root.findtext("lead_id") == "L1"
    assert root.findtext("event_id") == "E0"
    assert root.findtext("lead/first_name") == "Ann"
    assert root.findtext("lead/mortgage/loan/amount") == "250000"


def test_a_conversion_without_a_reason_sends_an_empty_one() -> None:
    # SPEC 8: the forwarded body has type, reason, lead_id, event_id and lead
    assert body(reason=None)["reason"] == ""


def test_a_field_name_that_is_not_an_xml_name_is_left_out_of_the_xml_body() -> None:
    odd = feedback_body(
        kind="conversion", reason=None, lead_id="L", source_event_id="E",
        fields={"1st choice": "x", "ok": "y"},
    )  # fmt: skip
    root = etree.fromstring(build_forward_request(target("xml"), odd, "F").body or b"")
    assert [child.tag for child in root.find("lead")] == ["ok"]


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({"a.b": 1, "a.c": 2}, {"a": {"b": 1, "c": 2}}),
        ({"a": "x", "a.b": 1}, {"a": "x", "a.b": 1}),
        ({"a": {"b": 1}, "a.b": 2}, {"a": {"b": 1}, "a.b": 2}),
        ({"a.": 1, ".b": 2}, {"a.": 1, ".b": 2}),
    ],
)
def test_dotted_field_ids_nest_unless_they_clash(
    values: dict[str, Any], expected: dict[str, Any]
) -> None:
    assert nested(values) == expected


@pytest.mark.parametrize(
    ("status", "error", "transient", "outcome"),
    [
        (None, "Connection error: refused", "Connection error: refused", None),
        (503, None, "Server error (HTTP 503)", None),
        (429, None, "HTTP 429", None),
        (200, None, None, ("success", None)),
        (302, None, None, ("success", None)),
        (400, None, None, ("failure", "HTTP 400")),
    ],
)
def test_a_source_answer_is_retried_accepted_or_refused(
    status: int | None, error: str | None, transient: str | None, outcome: Any
) -> None:
    answer = Answer(status, None, b"", 5, error)
    assert transient_reason(answer, on_status=[429]) == transient
    if outcome is not None:
        assert outcome_of(answer) == outcome
