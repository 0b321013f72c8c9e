"""The auction's pure parts (SPEC section 12): which bids may buy and in what order, which
bidders may bid, and which margin a source's quote keeps."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, cast

import pytest

from shared import auction, pings
from shared.auction import Bid
from shared.errors import ConfigError
from shared.flowconfig import AuctionStep, Recipient, parse_config
from shared.money.pricing import Margin, bid_cents, quote

NOW = datetime(2026, 12, 7, 15, 0, tzinfo=UTC)  # a Monday


def bids(*pairs: tuple[str, str]) -> list[Bid]:
    return [Bid(rid, auction.BID, Decimal(amount)) for rid, amount in pairs]


def test_bids_rank_best_first_and_a_tie_goes_to_the_buyer_listed_first() -> None:
    ranked = auction.rank(bids(("a", "5"), ("b", "9"), ("c", "9"), ("d", "7")), None)
    assert [b.recipient_id for b in ranked] == ["b", "c", "d", "a"]


def test_bids_rank_by_the_amount_the_buyer_wrote_though_each_pays_to_the_cent() -> None:
    a = Bid("a", auction.BID, Decimal("10.01"), exact=Decimal("10.011"))
    b = Bid("b", auction.BID, Decimal("10.01"), exact=Decimal("10.019"))
    assert [x.recipient_id for x in auction.rank([a, b], None)] == ["b", "a"]


def test_bids_under_the_floor_and_answers_that_are_not_bids_are_dropped() -> None:
    answers = [
        *bids(("a", "1.99"), ("b", "2.00"), ("c", "3")),
        Bid("d", auction.TIMEOUT),
        Bid("e", auction.NO_BID),
        Bid("f", auction.ERROR),
    ]
    assert [b.recipient_id for b in auction.rank(answers, Decimal("2.00"))] == ["c", "b"]
    assert [b.recipient_id for b in auction.rank(answers, None)] == ["c", "b", "a"]


def test_a_bid_survives_its_round_trip_through_storage_as_text() -> None:
    bid = Bid("a", auction.BID, Decimal("12.34"), "ref-1", 57, None)
    assert bid.to_dict()["buyer"] == "a"
    assert Bid.of(bid.to_dict()) == bid


class FakeGates:
    def __init__(
        self,
        paused: frozenset[str] = frozenset(),
        full: frozenset[str] = frozenset(),
        held: frozenset[str] = frozenset(),
    ) -> None:
        self.now = NOW
        self.paused = paused
        self._full = full
        self._held = held

    def has_room(
        self, recipient_id: str, recipient: Recipient, variables: Mapping[str, Any]
    ) -> bool:
        return recipient_id not in self._full

    def holds_duplicate(
        self, recipient_id: str, recipient: Recipient, fields: Mapping[str, Any]
    ) -> bool:
        return recipient_id in self._held


CONFIG = parse_config(
    {
        "recipients": {
            name: {"price": 3, "http": {"url": f"http://127.0.0.1:1/{name}"}}
            for name in ("a", "b", "c", "d", "e")
        }
        | {
            "closed": {
                "price": 3,
                "http": {"url": "http://127.0.0.1:1/closed"},
                "schedule": {"sat": ["09:00-10:00"]},
            }
        },
        "flows": {
            "f": {
                "sources": {"s": {}},
                "steps": [
                    {
                        "auction": {
                            "recipients": [
                                "a",
                                {
                                    "recipient": "b",
                                    "criteria": {
                                        "rules": [
                                            {"lhv": "lead.state", "op": "is equal to", "rhv": "TX"}
                                        ]
                                    },
                                },
                                "c",
                                "d",
                                "e",
                                "closed",
                            ]
                        }
                    }
                ],
            }
        },
    },
    {},
)


def test_only_bidders_whose_gates_let_them_take_the_lead_are_asked() -> None:
    # given b wants Texas, c is paused, d's cap is full, e holds the lead's duplicate key,
    # and one bidder is closed
    step = CONFIG.flows["f"].steps[0].auction
    assert isinstance(step, AuctionStep)
    gates = FakeGates(frozenset({"c"}), frozenset({"d"}), frozenset({"e"}))

    # when / then
    californian = auction.eligible(step, CONFIG, {"lead": {"state": "CA"}}, {}, gates)
    texan = auction.eligible(step, CONFIG, {"lead": {"state": "TX"}}, {}, gates)
    assert californian == ["a"]
    assert texan == ["a", "b"]


def test_a_sources_margin_overrides_its_flows() -> None:
    config = parse_config(
        {
            "flows": {
                "f": {
                    "margin": {"percent": 20},
                    "sources": {"own": {"margin": {"amount": 1.5}}, "plain": {}},
                }
            }
        },
        {},
    )
    flow = config.flows["f"]
    assert auction.margin_of(flow, flow.sources["own"]) == Margin(amount=Decimal("1.5"))
    assert auction.margin_of(flow, flow.sources["plain"]) == Margin(percent=Decimal(20))


@pytest.mark.parametrize(
    ("auction_step", "recipients", "problem"),
    [
        (
            {"recipients": ["ghost"]},
            {},
            "flows.f.steps[0].auction.recipients[0]: unknown recipient 'ghost'",
        ),
        (
            {"recipients": ["a", "a"]},
            {"a": {"price": 1, "http": {"url": "http://127.0.0.1:1/"}}},
            "flows.f.steps[0].auction.recipients[1]: 'a' appears twice in this auction",
        ),
        (
            {"recipients": []},
            {},
            "flows.f.steps[0].auction.recipients:",
        ),
        (
            {"recipients": ["a"], "timeout": "soon"},
            {"a": {"price": 1, "http": {"url": "http://127.0.0.1:1/"}}},
            "flows.f.steps[0].auction.timeout:",
        ),
        (
            {"recipients": ["a"], "timeout": "0s"},
            {"a": {"price": 1, "http": {"url": "http://127.0.0.1:1/"}}},
            "flows.f.steps[0].auction.timeout: Input should be greater than 0",
        ),
        (
            {"recipients": ["b"]},
            {"b": {"ping": {"url": "http://127.0.0.1:1/", "timeout": 0}, "manual": {}}},
            "recipients.b.ping.timeout: Input should be greater than 0",
        ),
    ],
)
def test_a_bad_auction_is_refused_with_its_path(
    auction_step: dict[str, Any], recipients: dict[str, Any], problem: str
) -> None:
    with pytest.raises(ConfigError) as refused:
        parse_config(
            {
                "recipients": recipients,
                "flows": {"f": {"sources": {"s": {}}, "steps": [{"auction": auction_step}]}},
            },
            {},
        )
    assert any(p.startswith(problem) for p in refused.value.problems), refused.value.problems


def test_a_bidder_used_only_in_auctions_may_have_duplicate_keys_of_its_flows_fields() -> None:
    # given a bidder with duplicate keys, listed only in an auction step of a flow with
    # the key's field
    loaded = parse_config(
        {
            "recipients": {
                "b": {"price": 3, "manual": {}, "duplicates": {"keys": [["email"]]}},
            },
            "flows": {
                "f": {
                    "fields": {"email": {"type": "email"}},
                    "sources": {"s": {}},
                    "steps": [{"auction": {"recipients": ["b"]}}],
                }
            },
        },
        {},
    )

    # then the file loads with the bidder's keys
    assert loaded.recipients["b"].duplicates is not None


def test_a_ping_limit_needs_a_window_of_minutes_hours_or_days() -> None:
    with pytest.raises(ConfigError) as refused:
        parse_config(
            {"flows": {"f": {"sources": {"s": {"ping_limits": [{"max": 5, "per": "week"}]}}}}},
            {},
        )
    assert any("flows.f.sources.s.ping_limits[0].per" in p for p in refused.value.problems)


class FakeFlowGates(FakeGates):
    def __init__(self, *, flow_full: bool = False, duplicate: bool = False) -> None:
        super().__init__()
        self._flow_full = flow_full
        self._duplicate = duplicate

    def flow_room(self, flow_id: str, flow: Any, source_id: str, variables: Any) -> bool:
        return not self._flow_full

    def flow_duplicate(self, flow_id: str, flow: Any, source_id: str, fields: Any) -> bool:
        return self._duplicate


PLANNED = parse_config(
    {
        "recipients": {
            "a": {"price": 3, "http": {"url": "http://127.0.0.1:1/a"}},
            "b": {"price": 4, "http": {"url": "http://127.0.0.1:1/b"}},
        },
        "flows": {
            "f": {
                "fields": {"state": {"type": "state"}},
                "acceptance_criteria": [
                    {
                        "rule_set": {
                            "rules": [{"lhv": "lead.state", "op": "is not equal to", "rhv": "AK"}]
                        },
                        "reason": "No Alaska",
                    }
                ],
                "sources": {"s": {}},
                "steps": [
                    {"recipient": "a"},
                    {
                        "filter": {
                            "rule_set": {
                                "rules": [{"lhv": "lead.state", "op": "is equal to", "rhv": "NV"}]
                            },
                            "reason": "Not Nevada",
                        }
                    },
                    {"auction": {"recipients": ["a", "b"]}},
                    {"auction": {"recipients": ["b"]}},
                ],
            },
            "closed": {
                "schedule": {"sat": ["09:00-10:00"]},
                "sources": {"s": {}},
            },
            "off": {"enabled": False, "sources": {"s": {}}},
        },
    },
    {},
)


def planned(state: str, gates: FakeFlowGates | None = None, flow: str = "f") -> pings.Plan:
    variables = {"lead": {"state": state}}
    return pings.plan(PLANNED, flow, "s", {}, variables, gates or FakeFlowGates())


def test_a_ping_runs_the_filters_and_every_auction_in_ping_mode_posting_nothing() -> None:
    plan = planned("TX")
    assert plan.failure is None and plan.has_auction
    assert [(index, bidders) for index, _, bidders in plan.auctions] == [
        (2, ["a", "b"]),
        (3, ["b"]),
    ]


def test_a_ping_fails_where_the_lead_would_fail() -> None:
    assert planned("NV").failure == "Not Nevada"
    assert planned("AK").failure == "No Alaska"
    assert planned("TX", FakeFlowGates(duplicate=True)).failure == "Duplicate"
    assert planned("TX", FakeFlowGates(flow_full=True)).failure == "Cap reached"
    closed = planned("TX", flow="closed")
    assert (closed.outcome, closed.failure) == (
        "failure",
        "Submission Timestamp must be within hours of operation",
    )
    # a disabled flow is an error, as /submit answers it
    off = planned("TX", flow="off")
    assert (off.outcome, off.failure) == ("error", "The flow is disabled")


def test_a_bidder_with_neither_ping_nor_price_may_join_an_auction_and_never_bids() -> None:
    # given SPEC section 12's example: acme (an http buyer with no price) in an auction
    config = parse_config(
        {
            "recipients": {
                "acme": {"http": {"url": "http://127.0.0.1:1/"}},
                "flat": {"price": "10.009", "http": {"url": "http://127.0.0.1:1/"}},
            },
            "flows": {
                "f": {
                    "sources": {"s": {}},
                    "steps": [{"auction": {"recipients": ["flat", "acme"]}}],
                }
            },
        },
        {},
    )
    step = config.flows["f"].steps[0].auction
    assert step is not None

    # when the auction collects its bids (neither buyer is asked over HTTP)
    bids = asyncio.run(
        auction.collect(cast(Any, None), step, config, ["flat", "acme"], {}, [], "ping-1")
    )

    # then acme bids nothing, and the fixed price counts to the cent below
    assert [(b.recipient_id, b.outcome, b.amount) for b in bids] == [
        ("flat", auction.BID, Decimal("10.00")),
        ("acme", auction.NO_BID, Decimal(0)),
    ]


@pytest.mark.parametrize(
    ("bid", "margin", "quoted"),
    [
        ("10.009", None, Decimal("10.00")),
        ("10.019", Margin(percent=Decimal(20)), Decimal("8.01")),  # 8.0152, not 10.01 less 20%
        ("10.00", Margin(percent=Decimal(7)), Decimal("9.30")),
        ("9.99", Margin(percent=Decimal(7)), Decimal("9.29")),
        ("10.00", Margin(amount=Decimal("1.50")), Decimal("8.50")),
    ],
)
def test_a_quote_is_the_best_bid_less_the_margin_rounded_down_to_the_cent(
    bid: str, margin: Margin | None, quoted: Decimal
) -> None:
    # the bid as the buyer wrote it (it pays it to the cent below)
    best = Bid("a", auction.BID, bid_cents(bid), exact=Decimal(bid))
    assert quote(best.value, margin, None) == quoted
    assert best.amount == Decimal(bid).quantize(Decimal("0.01"), rounding="ROUND_DOWN")
