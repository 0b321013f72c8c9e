"""A lead's stored fields: declared ones typed, every other submitted value kept."""

from __future__ import annotations

from shared.db.engine import utcnow
from shared.flowconfig import Flow
from shared.leaddata import base_variables, build_fields
from shared.rules import resolve

FLOW = Flow.model_validate(
    {"fields": {"mortgage.loan.amount": {"type": "number"}, "state": {"type": "state"}}}
)


def variables_of(submitted: dict[str, object]) -> dict[str, object]:
    fields = build_fields(FLOW, submitted)
    return base_variables("l1", "f", "s", utcnow(), fields)


def test_an_undeclared_field_beside_a_declared_dotted_one_is_kept() -> None:
    # given a submission with a declared nested field and an undeclared sibling
    submitted: dict[str, object] = {
        "mortgage": {"loan": {"amount": "$100,000", "rate": "5.1"}, "term": "30"}
    }

    # when the lead's fields are built
    fields = build_fields(FLOW, submitted)

    # then the declared one is typed, its siblings are kept as given, and rules see both
    assert fields["typed"]["mortgage.loan.amount"]["normal"] == 100000
    assert fields["extra"] == {"mortgage": {"loan": {"rate": "5.1"}, "term": "30"}}
    variables = variables_of(submitted)
    assert resolve(variables, "lead.mortgage.loan.rate") == "5.1"
    assert resolve(variables, "lead.mortgage.term") == "30"
    assert resolve(variables, "lead.mortgage.loan.amount").normal == 100000


def test_a_declared_field_leaves_nothing_behind_in_the_extra_fields() -> None:
    fields = build_fields(FLOW, {"mortgage": {"loan": {"amount": "1"}}, "state": "TX", "x": 1})
    assert fields["extra"] == {"x": "1"}


def test_a_flat_dotted_key_is_typed_and_not_kept_twice() -> None:
    fields = build_fields(FLOW, {"mortgage.loan.amount": "2", "mortgage.loan.rate": "3"})
    assert fields["typed"]["mortgage.loan.amount"]["normal"] == 2
    assert fields["extra"] == {"mortgage.loan.rate": "3"}


def test_a_declared_xml_element_with_attributes_is_typed_from_its_text() -> None:
    # given `<state source="geo">Texas</state>` as the XML body parser reads it
    from shared.formats.bodies import parse_body

    submitted = parse_body("text/xml", b"<lead><state source='geo'>Texas</state></lead>")

    # when the lead's fields are built, then the state is typed from the element's text
    fields = build_fields(FLOW, submitted)
    assert fields["typed"]["state"]["normal"] == "TX"


def test_nul_characters_are_dropped_from_every_body_format() -> None:
    # (PostgreSQL cannot store them; they never mean anything in a lead)
    from shared.formats.bodies import parse_body

    assert parse_body("application/json", b'{"st\\u0000ate": "Tex\\u0000as"}') == {"state": "Texas"}
    assert parse_body("application/x-www-form-urlencoded", b"state=Tex%00as") == {"state": "Texas"}
