"""Building a recipient's request from its http settings and the lead's variables."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from lxml import etree

from shared.fields import parse_field
from shared.flowconfig import HttpTarget
from shared.outbound.request import build_request, nest
from shared.outbound.send import url_problem

EVENT = "e" * 24


def variables() -> dict[str, Any]:
    return {
        "lead": {
            "id": "l" * 24,
            "first_name": parse_field("first_name", "Ann"),
            "phone_1": parse_field("phone", "(512) 555-1212"),
            "email": parse_field("email", "not-an-email"),
            "amount": parse_field("number", "$1,500.00"),
            "custom": "kept as given",
        },
        "event": {"id": EVENT},
        "flow": {"id": "auto"},
        "source": {"id": "web"},
        "submission": {"timestamp": "2026-11-23T10:00:00+00:00"},
    }


FLOW_FIELDS = ["first_name", "phone_1", "email", "amount"]


def target(**settings: Any) -> HttpTarget:
    return HttpTarget.model_validate({"url": "https://buyer.example/leads", **settings})


def test_without_a_mapping_every_flow_field_is_sent_under_its_own_name() -> None:
    request = build_request(target(format="json"), variables(), FLOW_FIELDS, EVENT)
    assert json.loads(request.body or b"") == {
        "first_name": "Ann",
        "phone_1": "5125551212",
        "email": "not-an-email",
        "amount": 1500,
    }


def test_without_a_mapping_a_flow_field_the_lead_lacks_is_sent_empty_in_every_format() -> None:
    # given a flow with a field the lead was not given
    fields = [*FLOW_FIELDS, "last_name"]

    # when each format's request is built
    def built(**settings: Any) -> bytes:
        return build_request(target(**settings), variables(), fields, EVENT).body or b""

    get = build_request(target(method="GET"), variables(), fields, EVENT)

    # then every flow field is there: null in JSON, empty in a form and a query string
    assert json.loads(built(format="json"))["last_name"] is None
    assert parse_qs(built(format="form").decode(), keep_blank_values=True)["last_name"] == [""]
    query = parse_qs(urlsplit(get.url).query, keep_blank_values=True)
    assert query["last_name"] == [""]


def test_invalid_values_are_sent_raw_and_valid_ones_normalized() -> None:
    request = build_request(target(format="form"), variables(), FLOW_FIELDS, EVENT)
    sent = parse_qs((request.body or b"").decode())
    assert sent["phone_1"] == ["5125551212"]
    assert sent["email"] == ["not-an-email"]


def test_a_mapping_renders_templates_and_keeps_literals() -> None:
    fields = {
        "fname": "{{lead.first_name}}",
        "lc_event_id": "{{event.id}}",
        "lc_lead_id": "{{lead.id}}",
        "where": "{{flow.id}}/{{source.id}}",
        "vendor": "leadflow",
        "tier": 3,
        "area": "{{lead.phone_1.area}}",
    }
    request = build_request(target(format="json", fields=fields), variables(), FLOW_FIELDS, EVENT)
    assert json.loads(request.body or b"") == {
        "fname": "Ann",
        "lc_event_id": EVENT,
        "lc_lead_id": "l" * 24,
        "where": "auto/web",
        "vendor": "leadflow",
        "tier": 3,
        "area": "512",
    }


def test_json_dot_paths_nest_and_numeric_parts_make_arrays() -> None:
    assert nest({"contact.name": "Ann", "phones.0.number": "1", "phones.1.number": "2"}) == {
        "contact": {"name": "Ann"},
        "phones": [{"number": "1"}, {"number": "2"}],
    }


def test_xml_paths_include_the_root_and_at_sets_an_attribute() -> None:
    fields = {
        "lead.contact.first_name": "{{lead.first_name}}",
        "lead.contact@type": "home",
        "lead.phone": "{{lead.phone_1}}",
    }
    request = build_request(target(format="xml", fields=fields), variables(), FLOW_FIELDS, EVENT)
    root = etree.fromstring(request.body or b"")
    assert root.tag == "lead"
    assert root.find("contact").get("type") == "home"
    assert root.findtext("contact/first_name") == "Ann"
    assert root.findtext("phone") == "5125551212"
    assert request.headers["Content-Type"] == "application/xml"


def test_xml_without_a_mapping_has_a_lead_root_with_one_element_per_field() -> None:
    request = build_request(target(format="xml"), variables(), FLOW_FIELDS, EVENT)
    root = etree.fromstring(request.body or b"")
    assert [child.tag for child in root] == FLOW_FIELDS


def test_xml_without_a_mapping_has_an_empty_element_for_a_field_left_unfilled() -> None:
    request = build_request(target(format="xml"), variables(), [*FLOW_FIELDS, "unfilled"], EVENT)
    root = etree.fromstring(request.body or b"")
    assert [child.tag for child in root] == [*FLOW_FIELDS, "unfilled"]
    assert root.findtext("unfilled") == ""


def test_get_sends_the_fields_as_a_query_string_and_no_body() -> None:
    request = build_request(
        target(method="GET", url="https://buyer.example/leads?key=1"),
        variables(),
        ["first_name"],
        EVENT,
    )
    assert request.body is None
    assert parse_qs(urlsplit(request.url).query) == {"key": ["1"], "first_name": ["Ann"]}


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH"])
def test_the_configured_method_is_used(method: str) -> None:
    assert build_request(target(method=method.lower()), variables(), [], EVENT).method == method


def test_headers_basic_auth_and_the_idempotency_key_go_on_every_request() -> None:
    request = build_request(
        target(
            headers={"X-Api-Key": "k", "X-Flow": "{{flow.id}}"},
            basic_username="u",
            basic_password="p",
        ),
        variables(),
        [],
        EVENT,
    )
    assert request.headers["X-Api-Key"] == "k"
    assert request.headers["X-Flow"] == "auto"
    assert request.headers["Idempotency-Key"] == EVENT
    assert request.auth == ("u", "p")


def test_a_form_body_is_url_encoded() -> None:
    request = build_request(target(format="form", fields={"a b": "x&y"}), variables(), [], EVENT)
    assert request.body == b"a+b=x%26y"
    assert request.headers["Content-Type"] == "application/x-www-form-urlencoded"


def test_only_no_answer_yet_a_5xx_or_a_listed_status_is_worth_retrying() -> None:
    from shared.outbound.send import Answer, transient_reason

    def answer(status: int | None, retryable: bool = True) -> Answer:
        return Answer(status, None, b"", 1, "Request failed: x", retryable=retryable)

    assert transient_reason(answer(None), []) == "Request failed: x"
    assert transient_reason(answer(None, retryable=False), []) is None
    assert transient_reason(answer(503), []) == "Server error (HTTP 503)"
    assert transient_reason(answer(600), []) is None
    assert transient_reason(answer(429), [429]) == "HTTP 429"
    assert transient_reason(answer(404), []) is None


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("https://buyer.example/leads?x=1", None),
        ("http://127.0.0.1:8080/a b", None),
        ("http://bücher.example/", None),
        ("http://[/x", "Invalid IPv6 URL"),
        ("http://bad host name/x", "no valid host"),
        ("http:///x", "no valid host"),
        ("ftp://buyer.example/x", "not http or https"),
        ("http://buyer.example:99999/", "Port out of range 0-65535"),
    ],
)
def test_a_url_that_can_never_be_requested_says_why(url: str, problem: str | None) -> None:
    assert url_problem(url) == problem
