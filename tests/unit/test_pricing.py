"""Money arithmetic (SPEC section 15) in Decimal: a source's cost, a recipient's revenue and
a ping quote's margin, rounded the way the contract says."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.money.pricing import CostRule, Margin, cents, quote, revenue, source_cost, to_json
from shared.rules import RuleSet

TX = RuleSet.model_validate({"rules": [{"lhv": "lead.state", "op": "is equal to", "rhv": "TX"}]})
SMITH = RuleSet.model_validate(
    {"rules": [{"lhv": "lead.last_name", "op": "is equal to", "rhv": "Smith"}]}
)
RULES = [CostRule(rule_set=TX, cost=Decimal("4")), CostRule(rule_set=SMITH, cost=Decimal("6.5"))]


def test_the_last_matching_cost_rule_wins_over_the_fixed_cost() -> None:
    both = {"lead": {"state": "TX", "last_name": "Smith"}}
    texan = {"lead": {"state": "TX", "last_name": "Lee"}}
    other = {"lead": {"state": "CA"}}
    assert source_cost(Decimal("2.5"), RULES, both) == Decimal("6.50")
    assert source_cost(Decimal("2.5"), RULES, texan) == Decimal("4.00")
    assert source_cost(Decimal("2.5"), RULES, other) == Decimal("2.50")
    assert source_cost(None, RULES, other) is None


def test_revenue_is_the_answers_price_else_the_recipients() -> None:
    assert revenue(Decimal("12.345"), Decimal("9")) == Decimal("12.35")
    assert revenue(None, Decimal("9")) == Decimal("9.00")  # the answer gave no price
    assert revenue(Decimal(0), Decimal("9")) == Decimal("0.00")  # it answered 0
    assert revenue(None, None) == Decimal("0")


@pytest.mark.parametrize(
    ("bid", "margin", "min_price", "expected"),
    [
        ("10.00", Margin(percent=Decimal(15)), None, "8.50"),
        ("9.99", Margin(percent=Decimal(15)), None, "8.49"),  # 8.4915: down to the cent
        ("10.00", Margin(amount=Decimal("2.25")), None, "7.75"),
        ("10.00", Margin(amount=Decimal("10")), None, None),  # not above 0: no bid
        ("10.00", Margin(percent=Decimal(20)), Decimal("8.00"), "8.00"),  # equal stands
        ("10.00", Margin(percent=Decimal(21)), Decimal("8.00"), None),  # below: no bid
        ("3.00", None, None, "3.00"),
    ],
)
def test_a_quote_is_the_best_bid_less_the_margin_rounded_down(
    bid: str, margin: Margin | None, min_price: Decimal | None, expected: str | None
) -> None:
    result = quote(Decimal(bid), margin, min_price)
    assert result == (Decimal(expected) if expected is not None else None)


def test_a_margin_is_a_percent_or_an_amount_not_both() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        Margin(percent=Decimal(1), amount=Decimal(1))


@given(
    bid=st.decimals(min_value=Decimal("0.01"), max_value=Decimal("10000"), places=2),
    percent=st.decimals(min_value=Decimal(0), max_value=Decimal(100), places=2),
)
def test_a_quote_never_exceeds_the_bid_less_its_margin_and_is_whole_cents(
    bid: Decimal, percent: Decimal
) -> None:
    result = quote(bid, Margin(percent=percent), None)
    if result is not None:
        assert result == cents(result)
        assert result <= bid * (100 - percent) / 100
        assert bid * (100 - percent) / 100 - result < Decimal("0.01")


def test_json_writes_amounts_as_plain_numbers_with_two_places() -> None:
    # given amounts among other values, one of them a text that only looks like a marker
    value = {
        "price": Decimal("12.3"),
        "ledger": [{"amount": Decimal("-7")}, {"amount": Decimal("0.005")}],
        "reason": "costs 1.00",
        "count": 3,
        "cost": None,
    }

    # when it is written as JSON
    written = to_json(value)

    # then each amount is a number with 2 places (to the cent, half up), the rest as usual
    assert written == (
        '{"price": 12.30, "ledger": [{"amount": -7.00}, {"amount": 0.01}],'
        ' "reason": "costs 1.00", "count": 3, "cost": null}'
    )
    assert json.loads(written)["price"] == 12.3
