from typing import Any

import pytest
from pydantic import ValidationError

from shared.fields import FieldValue, parse_field
from shared.rules import OPERATORS, Rule, RuleSet, evaluate, evaluate_rule, resolve

VARIABLES: dict[str, Any] = {
    "lead": {
        "first_name": parse_field("first_name", "Test"),
        "phone_1": parse_field("phone", "(512) 555-1212 ext 42"),
        "phone_2": parse_field("phone", "555"),
        "email": parse_field("email", "Mike@Gmail.com"),
        "state": parse_field("state", "Texas"),
        "postal_code": parse_field("postal_code", "78701"),
        "income": parse_field("number", "$100,000.00"),
        "homeowner": parse_field("boolean", "yes"),
        "renter": parse_field("boolean", "no"),
        "dob": parse_field("dob", "1980-05-01"),
        "move_date": parse_field("date", "3/15/2024"),
        "mortgage.loan.amount": parse_field("number", "250,000"),
        "blank": parse_field("string", ""),
        "custom": "Hello World",
        "count": "123",
        "tags": ["Auto", "Home"],
    },
    "acme": {
        "outcome": "success",
        "reason": None,
        "price": 1.5,
        "accepted": True,
        "quote": {"id": "9", "items": [{"sku": "a1"}, {"sku": "b2"}]},
    },
    "event": {"id": "evt-1"},
}


def rule(lhv: str, op: str, rhv: Any = None) -> Rule:
    return Rule(lhv=lhv, op=op, rhv=rhv)


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("lead.phone_1.area", "512"),
        ("lead.phone_1.exchange", "555"),
        ("lead.phone_1.extension", "42"),
        ("lead.phone_1.valid", True),
        ("lead.phone_1.raw", "(512) 555-1212 ext 42"),
        ("lead.phone_1.normal", "5125551212x42"),
        ("lead.phone_2.valid", False),
        ("lead.email.domain", "gmail.com"),
        ("lead.email.is_free", True),
        ("lead.state.name", "Texas"),
        ("lead.mortgage.loan.amount.normal", 250000),
        ("acme.outcome", "success"),
        ("acme.price", 1.5),
        ("acme.quote.id", "9"),
        ("acme.quote.items.1.sku", "b2"),
        ("event.id", "evt-1"),
        (" event.id ", "evt-1"),
        ("acme.reason", None),
        ("acme.missing", None),
        ("acme.quote.items.5.sku", None),
        ("acme.quote.items.x", None),
        ("lead.phone_1.nothing", None),
        ("nobody.knows", None),
        ("", None),
        ("lead..custom", None),
    ],
)
def test_resolve_walks_dot_paths_through_mappings_lists_and_fields(
    path: str, expected: Any
) -> None:
    # given the variables of a lead in a flow
    # when a dot path is resolved
    value = resolve(VARIABLES, path)
    # then it finds nested values, list items and field components, else None
    assert value == expected


def test_a_phones_type_is_its_component_and_another_fields_type_its_field_type() -> None:
    # given a home phone and an e-mail
    variables = {
        "lead": {
            "home": parse_field("phone", "512-555-1234 (h)"),
            "email": parse_field("email", "ann@example.com"),
        }
    }
    # then the phone's type is what kind of phone it is, the e-mail's its field type
    assert resolve(variables, "lead.home.type") == "home"
    assert resolve(variables, "lead.email.type") == "email"


def test_resolve_returns_the_field_itself_for_a_field_path() -> None:
    # given a lead with a parsed phone
    # when the field's own path is resolved
    value = resolve(VARIABLES, "lead.phone_1")
    # then the FieldValue itself comes back
    assert isinstance(value, FieldValue)
    assert value.normal == "5125551212x42"


@pytest.mark.parametrize(
    ("variables", "path", "expected"),
    [
        ({"a.b": {"c": 1}, "a": {"b": {"c": 2}}}, "a.b.c", 1),
        ({"a.b": {"x": 1}, "a": {"b": {"c": 2}}}, "a.b.c", 2),
        ({"a": {"b.c.d": 3}}, "a.b.c.d", 3),
    ],
)
def test_resolve_tries_the_longest_dotted_key_first(
    variables: dict[str, Any], path: str, expected: Any
) -> None:
    # given keys that themselves contain dots
    # when a path is resolved
    # then the longest existing key wins, falling back to shorter ones
    assert resolve(variables, path) == expected


OPERATOR_CASES: list[tuple[str, str, Any, bool]] = [
    # is equal to / is not equal to
    ("lead.first_name", "is equal to", "test", True),
    ("lead.first_name", "is equal to", "other", False),
    ("lead.first_name", "is not equal to", "other", True),
    ("lead.first_name", "is not equal to", "TEST", False),
    ("lead.count", "is equal to", 123, True),
    ("lead.count", "is equal to", "123.0", True),
    ("lead.income", "is equal to", "100000", True),
    ("lead.income", "is equal to", "$100,000", True),
    ("lead.state", "is equal to", "tx", True),
    ("lead.state", "is equal to", "Texas", True),
    ("lead.state", "is equal to", "OK", False),
    ("lead.phone_1", "is equal to", "(512) 555-1212 x42", True),
    ("lead.phone_2", "is equal to", "555", True),
    ("lead.homeowner", "is equal to", "true", True),
    ("lead.homeowner", "is equal to", "y", True),
    ("lead.homeowner", "is equal to", False, False),
    ("acme.outcome", "is equal to", "SUCCESS", True),
    ("acme.reason", "is equal to", "x", False),
    ("acme.reason", "is equal to", None, True),
    ("acme.reason", "is equal to", "", True),
    ("acme.missing", "is not equal to", "x", True),
    # ordering
    ("acme.price", "is less than", 2, True),
    ("acme.price", "is less than", "1.5", False),
    ("acme.price", "is less than or equal to", "1.5", True),
    ("acme.price", "is less than or equal to", 1, False),
    ("lead.income", "is greater than", 99999, True),
    ("lead.income", "is greater than", "100000", False),
    ("lead.income", "is greater than or equal to", "100,000", True),
    ("lead.income", "is greater than or equal to", 100001, False),
    ("lead.move_date", "is greater than", "2024-01-01", True),
    ("lead.move_date", "is less than", "Jan 1 2024", False),
    ("lead.count", "is greater than", 99, True),
    ("acme.missing", "is less than", 5, False),
    ("acme.missing", "is greater than", 5, False),
    # between (inclusive)
    ("lead.income", "is between", [50000, 100000], True),
    ("lead.income", "is between", [100000, 200000], True),
    ("lead.income", "is between", ["1", "99999"], False),
    ("lead.dob.age", "is between", [18, 120], True),
    ("lead.income", "is not between", [1, 10], True),
    ("lead.income", "is not between", [100000, 100000], False),
    ("acme.missing", "is between", [1, 10], False),
    # blank
    ("lead.blank", "is blank", None, True),
    ("acme.reason", "is blank", None, True),
    ("acme.missing", "is blank", None, True),
    ("lead.first_name", "is blank", None, False),
    ("lead.phone_2", "is blank", None, False),
    ("lead.first_name", "is not blank", None, True),
    ("lead.blank", "is not blank", None, False),
    # format
    ("lead.phone_1", "format is valid", None, True),
    ("lead.phone_2", "format is valid", None, False),
    ("lead.blank", "format is valid", None, False),
    ("acme.missing", "format is valid", None, False),
    ("acme.outcome", "format is valid", None, True),
    ("lead.phone_2", "format is invalid", None, True),
    ("lead.phone_1", "format is invalid", None, False),
    # includes
    ("lead.custom", "includes", "world", True),
    ("lead.custom", "includes", "mars", False),
    ("lead.tags", "includes", "auto", True),
    ("lead.tags", "includes", "life", False),
    ("lead.phone_1", "includes", "555", True),
    ("lead.email", "includes", ["yahoo", "gmail"], True),
    ("acme.missing", "includes", "x", False),
    ("lead.custom", "does not include", "mars", True),
    ("lead.custom", "does not include", "HELLO", False),
    # is included in
    ("lead.state", "is included in", ["TX", "OK"], True),
    ("lead.state", "is included in", ["Oklahoma", "Texas"], True),
    ("lead.state", "is included in", ["CA", "NY"], False),
    ("lead.state", "is included in", "TX, OK", True),
    ("lead.count", "is included in", [1, 123], True),
    ("acme.missing", "is included in", ["a"], False),
    ("lead.state", "is not included in", ["CA", "NY"], True),
    ("lead.state", "is not included in", ["tx"], False),
    # patterns
    ("lead.email", "matches pattern", r"@gmail\.com$", True),
    ("lead.email", "matches pattern", "^MIKE@", True),
    ("lead.email", "matches pattern", r"@yahoo\.", False),
    ("lead.email", "matches pattern", "([unclosed", False),
    ("lead.email", "does not match pattern", r"@yahoo\.", True),
    ("lead.email", "does not match pattern", "gmail", False),
    ("lead.postal_code", "matches pattern", r"^787\d\d$", True),
    # booleans
    ("lead.homeowner", "is true", None, True),
    ("lead.renter", "is true", None, False),
    ("acme.accepted", "is true", None, True),
    ("acme.outcome", "is true", None, False),
    ("lead.renter", "is false", None, True),
    ("lead.homeowner", "is false", None, False),
    ("acme.missing", "is false", None, True),
]


@pytest.mark.parametrize(("lhv", "op", "rhv", "expected"), OPERATOR_CASES)
def test_each_operator_holds_or_not(lhv: str, op: str, rhv: Any, expected: bool) -> None:
    # given a rule over the lead's variables
    the_rule = rule(lhv, op, rhv)
    # when it is evaluated
    result = evaluate_rule(the_rule, VARIABLES)
    # then it holds exactly when expected
    assert result is expected


def test_every_operator_is_covered_true_and_false() -> None:
    # given the operator table above
    rows = OPERATOR_CASES
    # when the outcomes are grouped per operator
    seen = {(op, expected) for _, op, _, expected in rows}
    # then every operator has a row that holds and one that does not
    assert seen == {(op, outcome) for op in OPERATORS for outcome in (True, False)}


def test_an_invalid_regex_never_matches() -> None:
    # given a pattern that does not compile
    broken = rule("lead.custom", "matches pattern", "(")
    # when it is evaluated
    # then it does not match, and its negation holds
    assert evaluate_rule(broken, VARIABLES) is False
    assert evaluate_rule(rule("lead.custom", "does not match pattern", "("), VARIABLES) is True


def test_is_between_is_inclusive_at_both_ends() -> None:
    # given a value of 5
    variables = {"x": 5}
    # when it is tested against ranges ending at 5
    # then both ends count
    assert evaluate_rule(rule("x", "is between", [5, 10]), variables)
    assert evaluate_rule(rule("x", "is between", [1, 5]), variables)
    assert not evaluate_rule(rule("x", "is between", [6, 10]), variables)


@pytest.mark.parametrize("op", ["and", "or"])
def test_an_empty_rule_set_matches(op: str) -> None:
    # given a rule set without rules
    rule_set = RuleSet.model_validate({"op": op, "rules": []})
    # when it is evaluated
    # then it matches
    assert evaluate(rule_set, VARIABLES) is True


def test_a_rule_set_defaults_to_and() -> None:
    # given a rule set without an op
    rule_set = RuleSet.model_validate({"rules": [{"lhv": "a", "op": "is blank"}]})
    # then it is an "and"
    assert rule_set.op == "and"


TRUE = {"lhv": "acme.outcome", "op": "is equal to", "rhv": "success"}
FALSE = {"lhv": "acme.outcome", "op": "is equal to", "rhv": "failure"}


@pytest.mark.parametrize(
    ("rule_set", "expected"),
    [
        ({"op": "and", "rules": [TRUE, TRUE]}, True),
        ({"op": "and", "rules": [TRUE, FALSE]}, False),
        ({"op": "or", "rules": [FALSE, TRUE]}, True),
        ({"op": "or", "rules": [FALSE, FALSE]}, False),
        ({"op": "and", "rules": [TRUE, {"op": "or", "rules": [FALSE, TRUE]}]}, True),
        ({"op": "and", "rules": [TRUE, {"op": "or", "rules": [FALSE, FALSE]}]}, False),
        ({"op": "or", "rules": [FALSE, {"rules": [TRUE, TRUE]}]}, True),
        ({"op": "or", "rules": [FALSE, {"rules": [TRUE, FALSE]}]}, False),
        ({"op": "or", "rules": [FALSE, {"rules": [{"op": "or", "rules": [TRUE]}]}]}, True),
        ({"op": "and", "rules": [{"rules": []}, {"op": "or", "rules": []}]}, True),
    ],
)
def test_nested_and_or_rule_sets_combine(rule_set: dict[str, Any], expected: bool) -> None:
    # given a rule set with nested rule sets, as read from YAML
    parsed = RuleSet.model_validate(rule_set)
    # when it is evaluated
    result = evaluate(parsed, VARIABLES)
    # then and/or combine at every level
    assert result is expected


def test_a_nested_item_becomes_a_rule_set_and_a_flat_item_a_rule() -> None:
    # given a rule set read from YAML
    parsed = RuleSet.model_validate({"rules": [TRUE, {"op": "or", "rules": [FALSE]}]})
    # then items with 'rules' are rule sets and items with 'lhv' are rules
    assert isinstance(parsed.rules[0], Rule)
    assert isinstance(parsed.rules[1], RuleSet)
    assert parsed.rules[1].op == "or"


def test_a_rule_set_round_trips_through_json() -> None:
    # given a nested rule set
    parsed = RuleSet.model_validate(
        {"rules": [TRUE, {"op": "or", "rules": [{"lhv": "x", "op": "is between", "rhv": [1, 2]}]}]}
    )
    # when it is dumped and read back
    restored = RuleSet.model_validate_json(parsed.model_dump_json())
    # then it is the same
    assert restored == parsed


def test_an_operator_is_read_case_and_space_insensitively() -> None:
    # given an operator typed with capitals and extra spaces
    the_rule = Rule(lhv="a", op="Is  Equal To", rhv=1)
    # then it is stored in its canonical form
    assert the_rule.op == "is equal to"


@pytest.mark.parametrize(
    ("data", "location", "message"),
    [
        (
            {"rules": [{"lhv": "a", "op": "is like"}]},
            ("rules", 0, "op"),
            "unknown operator 'is like'",
        ),
        (
            {"rules": [TRUE, {"op": "or", "rules": [{"lhv": "a", "op": "x"}]}]},
            ("rules", 1, "rules", 0, "op"),
            "unknown operator 'x'",
        ),
        (
            {"rules": [{"lhv": "a", "op": "is between", "rhv": 5}]},
            ("rules", 0, "rhv"),
            "is between takes a two-item list [low, high]",
        ),
        (
            {"rules": [{"lhv": "a", "op": "is between"}]},
            ("rules", 0, "rhv"),
            "is between takes a two-item list [low, high]",
        ),
        (
            {"rules": [{"lhv": "a", "op": "is not between", "rhv": [1, 2, 3]}]},
            ("rules", 0, "rhv"),
            "is not between takes a two-item list [low, high]",
        ),
        ({"op": "xor", "rules": []}, ("op",), "Input should be 'and' or 'or'"),
        ({"rules": [{"lhv": "a", "op": "is blank", "extra": 1}]}, ("rules", 0, "extra"), ""),
        ({"rules": [{"op": "is blank"}]}, ("rules", 0, "lhv"), "Field required"),
        ({"rules": ["is blank"]}, ("rules", 0), ""),
    ],
)
def test_a_bad_rule_set_is_refused_with_the_location_of_the_problem(
    data: dict[str, Any], location: tuple[str | int, ...], message: str
) -> None:
    # given a rule set with one mistake
    # when it is validated
    with pytest.raises(ValidationError) as caught:
        RuleSet.model_validate(data)
    # then the one error points at the offending field and says what is wrong
    errors = caught.value.errors()
    assert [error["loc"] for error in errors] == [location]
    assert message in errors[0]["msg"]


def test_rules_are_frozen() -> None:
    # given a rule
    the_rule = Rule(lhv="a", op="is blank")
    # when it is changed
    # then pydantic refuses
    with pytest.raises(ValidationError):
        the_rule.lhv = "b"
