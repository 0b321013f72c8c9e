"""Arbitrary input never breaks the feedback service: schemathesis against its OpenAPI
document, and hypothesis throwing bodies, content types and headers at a real delivered
event. No 5xx, and nothing taken unless the answer says so."""

from __future__ import annotations

import json
from urllib.parse import urlencode
from xml.sax.saxutils import escape

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from services.feedback.openapi import OPENAPI
from tests.e2e.conftest import Stack
from tests.support.mediatypes import CONTENT_TYPES as ANY_CONTENT_TYPES
from tests.support.recipient import Reply

schema = schemathesis.openapi.from_dict(OPENAPI)


@schema.parametrize()
@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
def test_feedback_conforms_to_its_openapi_document(case: schemathesis.Case, stack: Stack) -> None:
    case.call_and_validate(base_url=stack.feedback_url)


def test_an_event_id_of_control_characters_is_an_unknown_event_not_a_missing_one(
    stack: Stack,
) -> None:
    # given an event id the OpenAPI document calls valid (not blank: \x1d is no white space)
    # when feedback names it
    response = requests.post(
        f"{stack.feedback_url}/feedback?event_id=%1D%1D", json={"type": "return"}, timeout=10
    )

    # then it is an event that does not exist
    assert response.status_code == 404


def test_the_served_feedback_openapi_document_is_the_one_in_the_repository(stack: Stack) -> None:
    assert requests.get(f"{stack.feedback_url}/openapi.json", timeout=10).json() == OPENAPI


def test_feedback_is_ready_and_exports_metrics(stack: Stack) -> None:
    assert requests.get(f"{stack.feedback_url}/readyz", timeout=10).json()["status"] == "ok"
    metrics = requests.get(f"{stack.feedback_url}/metrics", timeout=10).text
    assert "leadflow_outbox_depth" in metrics


@pytest.fixture(scope="module")
def delivered_event(stack: Stack) -> tuple[str, str]:
    """A lead delivered by a step that takes returns and conversions: (lead id, event id)."""
    stack.recipient.script("/fb-buyer", [Reply(200, '{"outcome": "success"}')])
    answer = stack.submit("fb_free", data={"first_name": "Ann", "phone_1": "5125550147"}).json()
    assert answer["outcome"] == "success"
    (step,) = [e for e in stack.show(answer["lead"]["id"])["events"] if e["type"] == "recipient"]
    return answer["lead"]["id"], step["id"]


def xml_feedback(fields: dict[str, str]) -> bytes:
    inner = "".join(f"<{k}>{escape(v)}</{k}>" for k, v in fields.items())
    return f'<?xml version="1.0"?><feedback>{inner}</feedback>'.encode()


TAKEABLE = st.fixed_dictionaries(
    {"type": st.sampled_from(["return", "conversion"]), "reason": st.text(min_size=1, max_size=40)}
)
FIELDS = TAKEABLE | st.fixed_dictionaries(
    {},
    optional={
        "type": st.sampled_from(["return", "conversion", "Return", "refund", ""])
        | st.text(max_size=40),
        "reason": st.text(max_size=40),
    },
)
# Feedback in each format under its own Content-Type: some of it is taken.
WELL_FORMED = FIELDS.flatmap(
    lambda f: st.sampled_from(
        [
            (json.dumps(f).encode(), "application/json"),
            (urlencode(f).encode(), "application/x-www-form-urlencoded"),
            (xml_feedback(f), "text/xml"),
        ]
    )
)
CONTENT_TYPES = st.sampled_from([*ANY_CONTENT_TYPES, "text/xml; charset=utf-16"])
ANYTHING = st.tuples(
    st.binary(max_size=2048)
    | st.text(max_size=512).map(str.encode)
    | WELL_FORMED.map(lambda b: b[0]),
    CONTENT_TYPES,
)
ACCEPTS = st.sampled_from(
    ["*/*", "text/xml", "text/plain", "application/json;q=0", "image/png", "", ";;;"]
)
PRINTABLE = st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=40)


@given(
    request=WELL_FORMED | ANYTHING,
    accept=ACCEPTS,
    header=PRINTABLE.map(str.strip),
)
@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
def test_arbitrary_feedback_bodies_content_types_and_headers_never_cause_a_server_error(
    stack: Stack,
    delivered_event: tuple[str, str],
    request: tuple[bytes, str],
    accept: str,
    header: str,
) -> None:
    lead_id, event_id = delivered_event
    body, content_type = request
    # given the lead's delivery as delivered, whatever an earlier example made of it
    stack.execute("UPDATE deliveries SET status = 'delivered' WHERE event_id = :id", id=event_id)
    accepted_before = accepted_feedback(stack, lead_id)

    # when anything is posted as feedback on its event
    headers = {"Accept": accept, "X-Anything": header}
    if content_type:
        headers["Content-Type"] = content_type
    response = requests.post(
        f"{stack.feedback_url}/feedback",
        params={"event_id": event_id},
        data=body,
        headers=headers,
        timeout=30,
    )

    # then the service never fails, and it takes the feedback only when it says so
    event(f"HTTP {response.status_code}")
    assert response.status_code < 500, response.text
    status = stack.scalar("SELECT status FROM deliveries WHERE event_id = :id", id=event_id)
    if response.status_code == 201:
        assert "success" in response.text
        assert status in ("returned", "converted")
        assert accepted_feedback(stack, lead_id) == accepted_before + 1
    else:
        assert status == "delivered", response.text
        assert accepted_feedback(stack, lead_id) == accepted_before


def accepted_feedback(stack: Stack, lead_id: str) -> int:
    return int(
        stack.scalar(
            "SELECT count(*) FROM events WHERE lead_id = :id AND type = 'feedback-received'"
            " AND outcome = 'success'",
            id=lead_id,
        )
    )
