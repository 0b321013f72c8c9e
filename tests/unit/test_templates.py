from typing import Any

import pytest

from shared.fields import FieldValue, parse_field
from shared.templates import is_template, render, render_value

VARIABLES: dict[str, Any] = {
    "lead": {
        "id": "lead-1",
        "first_name": parse_field("first_name", " Ada "),
        "phone_1": parse_field("phone", "(512) 555-1212 ext 42"),
        "phone_2": parse_field("phone", "not a phone"),
        "state": parse_field("state", "texas"),
        "income": parse_field("number", "$100,000.00"),
        "homeowner": parse_field("boolean", "yes"),
        "mortgage.loan.amount": parse_field("number", "250,000"),
    },
    "acme": {
        "outcome": "success",
        "reason": None,
        "price": 12.0,
        "rate": 1.25,
        "accepted": False,
        "quote": {"id": 9},
    },
    "event": {"id": "evt-1"},
}


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{{lead.first_name}}", "Ada"),
        ("{{ lead.first_name }}", "Ada"),
        ("Hi {{lead.first_name}} from {{lead.state}}", "Hi Ada from TX"),
        ("{{lead.phone_1}}", "5125551212x42"),
        ("{{lead.phone_1.area}}", "512"),
        ("{{lead.phone_2}}", "not a phone"),
        ("{{lead.income}}", "100000"),
        ("{{lead.homeowner}}", "true"),
        ("{{acme.accepted}}", "false"),
        ("{{lead.mortgage.loan.amount}}", "250000"),
        ("{{acme.price}}", "12"),
        ("{{acme.rate}}", "1.25"),
        ("{{acme.quote.id}}", "9"),
        ("{{acme.reason}}", ""),
        ("[{{nothing.here}}]", "[]"),
        ("{{event.id}}:{{lead.id}}", "evt-1:lead-1"),
        ("no placeholders", "no placeholders"),
        ("{ single braces }", "{ single braces }"),
    ],
)
def test_render_replaces_every_placeholder_with_its_text(template: str, expected: str) -> None:
    # given a template over the lead's variables
    # when it is rendered
    text = render(template, VARIABLES)
    # then each placeholder shows its value as text
    assert text == expected


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{{acme.price}}", 12.0),
        ("{{ acme.accepted }}", False),
        ("{{acme.quote.id}}", 9),
        ("{{acme.reason}}", None),
        ("{{nothing}}", None),
        ("{{acme.price}} USD", "12 USD"),
        ("literal", "literal"),
    ],
)
def test_render_value_keeps_a_lone_placeholder_unconverted(template: str, expected: Any) -> None:
    # given a template that is one placeholder, or anything else
    # when its value is rendered
    value = render_value(template, VARIABLES)
    # then a lone placeholder gives the value itself, anything else text
    assert value == expected
    assert type(value) is type(expected)


def test_render_value_returns_a_field_as_a_field() -> None:
    # given a template naming a parsed field
    # when its value is rendered
    value = render_value("{{lead.income}}", VARIABLES)
    # then the FieldValue comes back, so JSON output can send the number
    assert isinstance(value, FieldValue)
    assert value.normal == 100000


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("{{lead.first_name}}", True),
        ("Dear {{ lead.first_name }},", True),
        ("leadflow", False),
        ("{lead.first_name}", False),
        ("", False),
    ],
)
def test_is_template_spots_placeholders(text: str, expected: bool) -> None:
    # given a configured value
    # when it is checked for placeholders
    # then only text with {{ ... }} is a template
    assert is_template(text) is expected
