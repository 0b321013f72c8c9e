"""Flow duplicate keys (SPEC section 14): normal values, blank fields, scope."""

from __future__ import annotations

from typing import Any

from shared.flowconfig import Flow, FlowDuplicates
from shared.gates.duplicates import keys_of
from shared.leaddata import build_fields

FLOW = Flow.model_validate(
    {
        "fields": {
            "email": {"type": "email"},
            "phone_1": {"type": "phone"},
            "first_name": {"type": "first_name"},
            "last_name": {"type": "last_name"},
        }
    }
)
BY_EMAIL_OR_NAME = FlowDuplicates(keys=[["email"], ["first_name", "last_name"]])


def keys(
    submitted: dict[str, Any], duplicates: FlowDuplicates = BY_EMAIL_OR_NAME, **kw: str
) -> set[bytes]:
    fields = build_fields(FLOW, submitted)
    return {
        k.key for k in keys_of(kw.get("flow", "f"), kw.get("source", "web"), duplicates, fields)
    }


def test_values_are_compared_in_their_normal_form() -> None:
    # given the same e-mail and phone number written two ways
    by_phone = FlowDuplicates(keys=[["phone_1"]])

    # then their keys are equal
    assert keys({"email": "Ann@Example.COM "}) == keys({"email": "ann@example.com"})
    assert keys({"first_name": "JOHN", "last_name": "doe"}) == keys(
        {"first_name": " John ", "last_name": "Doe"}
    )
    assert keys({"phone_1": "(512) 555-1212"}, by_phone) == keys(
        {"phone_1": "5125551212"}, by_phone
    )


def test_a_key_with_a_blank_field_is_not_used() -> None:
    # given a first name without a last name
    submitted = {"first_name": "Ann", "last_name": "  "}

    # then only the e-mail key would be used, and here there is none
    assert keys(submitted) == set()
    assert len(keys({**submitted, "email": "a@b.co"})) == 1


def test_each_key_is_kept_apart_and_each_flow_has_its_own() -> None:
    # given one lead's values
    submitted = {"email": "a@b.co", "first_name": "Ann", "last_name": "Lee"}

    # then it has a key per key of the flow, and another flow's keys differ
    assert len(keys(submitted)) == 2
    assert keys(submitted, flow="f") != keys(submitted, flow="g")


def test_scope_source_keeps_each_source_apart_and_scope_flow_does_not() -> None:
    by_source = FlowDuplicates(keys=[["email"]], scope="source")
    submitted = {"email": "a@b.co"}

    assert keys(submitted, by_source, source="web") != keys(submitted, by_source, source="partner")
    assert keys(submitted, source="web") == keys(submitted, source="partner")
