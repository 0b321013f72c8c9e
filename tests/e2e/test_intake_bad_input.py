"""Arbitrary input never breaks intake: schemathesis against its OpenAPI document, and
hypothesis throwing bodies, content types and headers at it. No 5xx, no partial record."""

from __future__ import annotations

import re

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.intake.openapi import OPENAPI
from tests.e2e.conftest import Stack
from tests.support.mediatypes import CONTENT_TYPES as ANY_CONTENT_TYPES

schema = schemathesis.openapi.from_dict(OPENAPI)


@schema.parametrize()
@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
def test_intake_conforms_to_its_openapi_document(case: schemathesis.Case, stack: Stack) -> None:
    case.call_and_validate(base_url=stack.intake_url)


def test_the_served_openapi_document_is_the_one_in_the_repository(stack: Stack) -> None:
    assert requests.get(f"{stack.intake_url}/openapi.json", timeout=10).json() == OPENAPI


CONTENT_TYPES = st.sampled_from(ANY_CONTENT_TYPES)
ACCEPTS = st.sampled_from(
    [
        "*/*",
        "text/xml",
        "text/plain",
        "application/json;q=0",
        "image/png",
        "",
        "text/*, */*;q=0.1",
        ";;;",
    ]
)


@given(
    body=st.binary(max_size=2048) | st.text(max_size=512).map(str.encode),
    content_type=CONTENT_TYPES,
    accept=ACCEPTS,
    header=st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=40).map(
        str.strip
    ),
)
@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
def test_arbitrary_bodies_content_types_and_headers_never_cause_a_server_error(
    stack: Stack, body: bytes, content_type: str, accept: str, header: str
) -> None:
    headers = {"Accept": accept, "X-Anything": header}
    if content_type:
        headers["Content-Type"] = content_type
    response = requests.post(
        f"{stack.intake_url}/flows/intake_json/sources/open/submit",
        data=body,
        headers=headers,
        timeout=30,
    )
    assert response.status_code < 500, response.text
    if response.status_code == 201:
        match = re.search(r"[0-9a-f]{24}", response.text)
        assert match is not None, response.text
        lead_id = match.group(0)
        # a stored lead is whole: the lead and its source event
        assert (
            stack.scalar(
                "SELECT count(*) FROM events WHERE lead_id = :id AND type = 'source'", id=lead_id
            )
            == 1
        )


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("application/json", b"[" * 100_000 + b"]" * 100_000),
        ("application/xml", b"<a>" * 50_000 + b"</a>" * 50_000),
    ],
)
def test_a_body_nested_thousands_of_levels_deep_gets_a_400_with_the_reason(
    stack: Stack, content_type: str, body: bytes
) -> None:
    response = requests.post(
        f"{stack.intake_url}/flows/intake_json/sources/open/submit",
        data=body,
        headers={"Content-Type": content_type, "Accept": "application/json"},
        timeout=30,
    )
    assert response.status_code == 400, response.text
    assert "nested more than 32 levels deep" in response.json()["reason"]
