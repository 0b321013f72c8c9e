"""Prices as ``Decimal`` from the YAML to the ``NUMERIC`` column: a source's cost, a
recipient's revenue, a ping quote's margin. Pure decisions."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from decimal import ROUND_DOWN, ROUND_HALF_UP, Decimal
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic_core import PydanticCustomError

from shared.rules import RuleSet, evaluate

CENT = Decimal("0.01")


def cents(value: Any) -> Decimal:
    """An amount to the cent (half up): the one rounding of stored amounts."""
    return Decimal(str(value)).quantize(CENT, rounding=ROUND_HALF_UP)


def to_json(value: Any, indent: int | None = None) -> str:
    """JSON in which every amount (a ``Decimal``) is a plain number with 2 places
    (``12.30``, not ``12.3`` or ``"12.30"``): money is shown with 2 places and never
    passes through binary floating point."""

    def amount(o: Any) -> str:
        if isinstance(o, Decimal):
            return f"{_MONEY}{cents(o):.2f}"
        raise TypeError(f"{type(o).__name__} is not JSON serializable")

    text = json.dumps(value, default=amount, indent=indent)
    return _MONEY_IN_JSON.sub(r"\1", text)


#: How ``to_json`` marks an amount before it takes its quotes off: a NUL never stands in
#: a value (intake drops it), and JSON writes it escaped.
_MONEY = "\x00money:"
_MONEY_IN_JSON = re.compile(r'"\\u0000money:(-?\d+\.\d\d)"')


def bid_cents(value: Any) -> Decimal:
    """A buyer's bid to the cent below: it never pays more than it bid, and a quote
    (the best bid less the margin, rounded down) never rounds a bid up."""
    return Decimal(str(value)).quantize(CENT, rounding=ROUND_DOWN)


class CostRule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    rule_set: RuleSet = Field(default_factory=RuleSet)
    cost: Decimal = Field(ge=0)


class Margin(BaseModel):
    """What the platform keeps of a ping's best bid: a percentage or an amount."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    percent: Decimal | None = Field(default=None, ge=0, le=100)
    amount: Decimal | None = Field(default=None, ge=0)

    @model_validator(mode="after")
    def _one(self) -> Margin:
        if (self.percent is None) == (self.amount is None):
            raise PydanticCustomError(
                "margin", "a margin needs exactly one of 'percent' or 'amount'"
            )
        return self


def source_cost(
    cost: Decimal | None, rules: Sequence[CostRule], variables: Mapping[str, Any]
) -> Decimal | None:
    """What the source is paid for an accepted lead: the last matching cost rule's cost,
    else the fixed ``cost``; None when neither is configured (or no rule matches and there
    is no fixed cost)."""
    for rule in reversed(rules):
        if evaluate(rule.rule_set, variables):
            return cents(rule.cost)
    return cents(cost) if cost is not None else None


def revenue(answered: Decimal | None, price: Decimal | None) -> Decimal:
    """A recipient's revenue for a lead it accepted: the price read from its answer (0
    when it answered 0; None: it gave none), else its configured ``price``, else nothing."""
    if answered is not None:
        return cents(answered)
    return cents(price) if price is not None else Decimal(0)


def owed(step_price: Any, price: Decimal | None) -> Decimal:
    """What a buyer that gives no answer (a batch, a download) owes for a lead: the
    price its step carries (an auction's post's bid, or the price the step was routed
    at; 0 or None: none was set), else its configured ``price``."""
    return cents(Decimal(step_price)) if step_price else revenue(None, price)


def quote(best_bid: Decimal, margin: Margin | None, min_price: Decimal | None) -> Decimal | None:
    """The price offered to a pinging source: the best bid less the margin, rounded down
    to the cent; None (no bid) when it is not above 0 or is below ``min_price`` (a quote
    equal to it stands)."""
    price = Decimal(best_bid)
    if margin is not None and margin.percent is not None:
        price = price * (Decimal(100) - margin.percent) / Decimal(100)
    elif margin is not None and margin.amount is not None:
        price = price - margin.amount
    price = price.quantize(CENT, rounding=ROUND_DOWN)
    if price <= 0 or (min_price is not None and price < min_price):
        return None
    return price
