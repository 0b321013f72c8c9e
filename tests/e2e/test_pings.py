"""Ping/post (SPEC section 12) through the real intake, router and HTTP delivery
processes, with bidders served by a local aiohttp server: a source pings, is quoted the
best bid less the margin, posts against the ping and is paid the quote; the best bidder
is posted its lead, the next one when it rejects; a bidder that never answers, one that
refuses connections and one that answers garbage cost the ping nothing but their bids."""

from __future__ import annotations

import json
import secrets
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from typing import Any

import pytest
import requests

from tests.e2e.conftest import Stack
from tests.support.recipient import Reply


def bid(amount: float, ref: str) -> Reply:
    return Reply(200, json.dumps({"status": "accepted", "bid": amount, "bid_id": ref}))


NO_BID = Reply(200, '{"status": "declined"}')
ACCEPT = Reply(200, '{"outcome": "success"}')
REJECT = Reply(200, '{"outcome": "failure"}')


def bidders(
    stack: Stack, a: Reply, b: Reply, *, a_post: Reply | None = None, b_post: Reply | None = None
) -> None:
    """Script the next answers of bidders a and b to a ping, and to a post where given."""
    for path, reply in (("a/ping", a), ("b/ping", b), ("a/post", a_post), ("b/post", b_post)):
        if reply is not None:
            stack.recipient.script(f"/bidder-{path}", [reply])


@pytest.fixture
def silent(stack: Stack) -> Iterator[threading.Event]:
    """The silent bidder holds every ping until the test ends."""
    released = threading.Event()
    stack.recipient.script("/silent/ping", [Reply(200, '{"bid": 50}', hold=released)])
    stack.recipient.script("/garbage/ping", [Reply(200, "<<<not json", "application/json")])
    yield released
    released.set()


def ping(stack: Stack, source: str, **fields: Any) -> requests.Response:
    return requests.post(
        f"{stack.intake_url}/flows/auction/sources/{source}/ping", data=fields, timeout=30
    )


def post(stack: Stack, source: str, ping_id: str, **fields: Any) -> dict[str, Any]:
    answer = requests.post(
        f"{stack.intake_url}/flows/auction/sources/{source}/submit",
        data={"ping_id": ping_id, **fields},
        timeout=30,
    )
    assert answer.status_code == 201, answer.text
    return dict(answer.json())


def posts_for(stack: Stack, path: str, ref: str) -> list[dict[str, Any]]:
    found = []
    for received in stack.recipient.requests(path):
        body = received.json() if received.body else {}
        if body.get("ref") == ref:
            found.append(body)
    return found


def test_a_source_pings_is_quoted_the_best_bid_less_the_margin_and_posts_at_that_price(
    stack: Stack, silent: threading.Event
) -> None:
    # given two bidders at 10.00 and 8.00, one that never answers, one refusing
    # connections, one answering garbage, and a fixed-price buyer at 2.50
    ref = secrets.token_hex(4)
    bidders(stack, bid(10, "A-1"), bid(8, "B-1"), a_post=ACCEPT)

    # when the source pings with the lead's non-contact fields
    answer = ping(stack, "web", state="TX", ref=ref)

    # then it is quoted 10.00 less the flow's 20%, while the silent bidder still holds
    assert answer.status_code == 200
    quoted = answer.json()
    assert (quoted["outcome"], quoted["price"]) == ("success", 8.0)
    assert not silent.is_set() and stack.recipient.in_flight.get("/silent/ping", 0) == 1
    shown = json.loads(stack.leadflow("pings", "show", quoted["ping_id"], "--json").stdout)
    assert all(b["buyer"] == b["recipient"] for b in shown["bids"])
    outcomes = {b["buyer"]: b["outcome"] for b in shown["bids"]}
    assert outcomes == {
        "bidder_a": "bid",
        "bidder_b": "bid",
        "flat_buyer": "bid",
        "silent_bidder": "timeout",
        "refusing_bidder": "error",
        "garbage_bidder": "no bid",
    }

    # when it posts the contact fields against the ping
    posted = post(stack, "web", quoted["ping_id"], phone_1="5125550100")

    # then it is paid the quote, the best bidder is posted its lead with its bid's
    # reference, and the ledger has the cost and the bid as revenue
    assert (posted["outcome"], posted["price"]) == ("success", 8.0)
    (sent,) = posts_for(stack, "/bidder-a/post", ref)
    assert (sent["bid_id"], sent["phone"]) == ("A-1", "5125550100")
    assert posts_for(stack, "/bidder-b/post", ref) == []
    report = stack.show(posted["lead"]["id"])
    ledger = {(r["kind"], r["party"]): r["amount"] for r in report["ledger"]}
    assert ledger == {("cost", "auction/web"): 8, ("revenue", "bidder_a"): 10}
    assert report["lead"]["fields"]["state"] == "TX"
    auction = next(e for e in report["events"] if e["type"] == "auction")
    assert (auction["outcome"], auction["recipient"], auction["price"]) == (
        "success",
        "bidder_a",
        10,
    )
    # and the post is an event of the auction's step (the flow's first)
    (posted_event,) = [e for e in report["events"] if e["type"] == "recipient"]
    assert (posted_event["step"], posted_event["recipient"]) == (0, "bidder_a")
    assert auction["step"] == 0
    ids = [e["id"] for e in report["events"]]
    assert len(set(ids)) == len(ids), ids  # each bid an event of its own
    assert {e["recipient"] for e in report["events"] if e["type"] == "ping"} >= {
        "bidder_a",
        "silent_bidder",
    }


def test_a_winner_that_rejects_the_post_leaves_the_lead_to_the_next_bid(
    stack: Stack, silent: threading.Event
) -> None:
    # given bidder a bids best but rejects the post; bidder b bids 8.00
    ref = secrets.token_hex(4)
    bidders(stack, bid(10, "A-2"), bid(8, "B-2"), a_post=REJECT, b_post=ACCEPT)
    quoted = ping(stack, "web", state="CA", ref=ref).json()

    # when the source posts
    posted = post(stack, "web", quoted["ping_id"], phone_1="5125550101")

    # then b buys at its bid, and the source is still paid the quote
    assert (posted["outcome"], posted["price"]) == ("success", 8.0)
    assert len(posts_for(stack, "/bidder-a/post", ref)) == 1
    (sent,) = posts_for(stack, "/bidder-b/post", ref)
    assert sent["bid_id"] == "B-2"
    report = stack.show(posted["lead"]["id"])
    revenue = [(r["party"], r["amount"]) for r in report["ledger"] if r["kind"] == "revenue"]
    assert revenue == [("bidder_b", 8)]
    # and the flow processed one step, the auction, whatever it posted
    assert report["events"][-1]["type"] == "source"
    assert report["events"][-1]["steps_processed"] == 1


def test_a_post_needs_a_live_unposted_ping_that_was_bid_on(
    stack: Stack, silent: threading.Event
) -> None:
    ref = secrets.token_hex(4)
    bidders(stack, bid(10, "A-3"), NO_BID, a_post=ACCEPT)

    # a ping id that is not one, or that is unknown: ping expired
    assert post(stack, "web", "not-an-id")["reason"] == "ping expired"
    assert post(stack, "web", secrets.token_hex(12))["reason"] == "ping expired"

    # a ping posted twice: the second post is a duplicate
    quoted = ping(stack, "web", state="NY", ref=ref).json()
    first = post(stack, "web", quoted["ping_id"], phone_1="5125550102")
    second = post(stack, "web", quoted["ping_id"], phone_1="5125550102")
    assert first["outcome"] == "success"
    assert (second["outcome"], second["reason"]) == ("failure", "duplicate")

    # a ping nobody bid on (the fixed buyer's 2.50 less 20% is under the affiliate's
    # minimum): no bid, at ping and at post
    stack.recipient.script("/bidder-a/ping", [NO_BID])
    unbid = ping(stack, "affiliate", state="NY", ref=secrets.token_hex(4)).json()
    assert (unbid["outcome"], unbid["reason"], unbid["price"]) == ("failure", "no bid", 0)
    assert post(stack, "affiliate", unbid["ping_id"])["reason"] == "no bid"


def test_a_source_margin_and_minimum_price_override_the_flows(
    stack: Stack, silent: threading.Event
) -> None:
    # given a best bid of 10.00: the affiliate keeps 1.50 (not the flow's 20%)
    bidders(stack, bid(10, "A-4"), NO_BID)
    quoted = ping(stack, "affiliate", state="TX", ref=secrets.token_hex(4)).json()
    assert (quoted["outcome"], quoted["price"]) == ("success", 8.5)

    # and a best bid of 8.40 quotes 6.90, under its minimum of 7.00: no bid
    stack.recipient.script("/bidder-a/ping", [bid(8.4, "A-5")])
    low = ping(stack, "affiliate", state="TX", ref=secrets.token_hex(4)).json()
    assert (low["outcome"], low["reason"]) == ("failure", "no bid")


def test_the_same_ping_again_gets_the_first_answer_without_pinging_anyone(
    stack: Stack, silent: threading.Event
) -> None:
    ref = secrets.token_hex(4)
    bidders(stack, bid(6, "A-6"), NO_BID)
    first = ping(stack, "web", state="TX", ref=ref).json()
    again = ping(stack, "web", state="TX", ref=ref).json()
    assert again == first
    asked = [r for r in stack.recipient.requests("/bidder-a/ping") if r.json().get("ref") == ref]
    assert len(asked) == 1


def test_identical_pings_at_once_get_one_answer_and_ping_the_buyers_once(
    stack: Stack, silent: threading.Event
) -> None:
    # given bidders answering pings (the silent one holds each to the auction's deadline)
    ref = secrets.token_hex(4)
    bidders(stack, bid(6, "A-6"), NO_BID)

    # when ten identical pings arrive at once
    with ThreadPoolExecutor(10) as pool:
        answers = list(pool.map(lambda _: ping(stack, "web", state="TX", ref=ref), range(10)))

    # then each gets the same answer and ping_id, and bidder a was asked once
    assert {a.status_code for a in answers} == {200}
    assert len({a.json()["ping_id"] for a in answers}) == 1
    asked = [r for r in stack.recipient.requests("/bidder-a/ping") if r.json().get("ref") == ref]
    assert len(asked) == 1


def test_identical_pings_in_quick_bursts_get_one_answer_each_burst(stack: Stack) -> None:
    # given bidders that answer at once (the silent one too, with no bid: other tests
    # count its bids)
    bidders(stack, bid(6, "A-6"), NO_BID)
    stack.recipient.script("/silent/ping", [NO_BID])
    for _ in range(6):
        # when eight identical pings are released together
        ref = secrets.token_hex(4)
        start = threading.Barrier(8)

        def one(_: int, ref: str = ref, start: threading.Barrier = start) -> str:
            start.wait()
            return str(ping(stack, "web", state="TX", ref=ref).json()["ping_id"])

        with ThreadPoolExecutor(8) as pool:
            ids = set(pool.map(one, range(8)))

        # then they share one ping_id
        assert len(ids) == 1, ids


def test_pings_over_a_limit_are_answered_429_with_retry_after(
    stack: Stack, silent: threading.Event
) -> None:
    bidders(stack, NO_BID, NO_BID)
    answers = [ping(stack, "limited", ref=secrets.token_hex(4)) for _ in range(3)]
    assert [a.status_code for a in answers] == [200, 200, 429]
    body = answers[2].json()
    assert (body["status"], body["message"]) == (429, "Too Many Requests")
    assert 0 < int(answers[2].headers["Retry-After"]) <= 3600
    assert body["retry_after"] == int(answers[2].headers["Retry-After"]) * 1000


def test_a_bad_ping_body_gets_the_same_errors_as_a_submission(stack: Stack) -> None:
    bad = requests.post(
        f"{stack.intake_url}/flows/auction/sources/web/ping",
        data=b'{"state": ',
        headers={"Content-Type": "application/json"},
        timeout=10,
    )
    assert bad.status_code == 400
    unknown = requests.post(f"{stack.intake_url}/flows/auction/sources/nobody/ping", timeout=10)
    assert unknown.status_code == 404


def test_a_flow_without_an_auction_quotes_the_sources_cost(stack: Stack) -> None:
    def ping_no_auction(source: str) -> dict[str, Any]:
        url = f"{stack.intake_url}/flows/no_auction/sources/{source}/ping"
        return dict(requests.post(url, data={"ref": secrets.token_hex(4)}, timeout=10).json())

    # a source with a cost is quoted it; one without is quoted 0, which is no bid
    answer = ping_no_auction("priced")
    assert (answer["outcome"], answer["price"]) == ("success", 4.25)
    answer = ping_no_auction("unpaid")
    assert (answer["outcome"], answer["reason"], answer["price"]) == ("failure", "no bid", 0)
    assert answer["ping_id"]
    # and a cost under the source's min_price is no bid, as a bid's quote under it is
    answer = ping_no_auction("floored")
    assert (answer["outcome"], answer["reason"], answer["price"]) == ("failure", "no bid", 0)


def test_a_lead_submitted_without_a_ping_is_auctioned_and_sold_to_the_best_bid(
    stack: Stack, silent: threading.Event
) -> None:
    # given bidder b outbids a
    ref = secrets.token_hex(4)
    bidders(stack, bid(5, "A-7"), bid(9.25, "B-7"), b_post=ACCEPT)

    # when a lead is submitted straight to the auction flow
    answer = stack.submit(
        "auction", "web", data={"state": "TX", "phone_1": "5125550107", "ref": ref}
    )

    # then the bidders are pinged, b is posted the lead with its reference, and it pays
    # its bid
    assert answer.json()["outcome"] == "success", answer.text
    (sent,) = posts_for(stack, "/bidder-b/post", ref)
    assert sent["bid_id"] == "B-7"
    report = stack.show(answer.json()["lead"]["id"])
    revenue = [(r["party"], r["amount"]) for r in report["ledger"] if r["kind"] == "revenue"]
    assert revenue == [("bidder_b", 9.25)]
    assert Decimal(answer.json()["price"]) == Decimal("9.25")
    ids = [e["id"] for e in report["events"]]
    assert len(set(ids)) == len(ids), ids  # the auction's event and each bid its own id


def test_the_report_counts_pings_and_bids_by_source_and_by_recipient(
    stack: Stack, silent: threading.Event
) -> None:
    # given a ping the bidders bid 6.00 and 4.00 on, beside whatever came before
    bidders(stack, bid(6, "A-9"), bid(4, "B-9"))
    ping(stack, "web", state="TX", ref=secrets.token_hex(4))

    # when the reports are asked for
    def report(by: str) -> dict[str, dict[str, Any]]:
        rows = json.loads(stack.leadflow("report", "--by", by, "--format", "json").stdout)
        return {row[by]: row for row in rows}

    by_source, by_recipient = report("source"), report("recipient")

    # then the source's pings are the stored pings, and each bidder's figures its bids
    web = by_source["auction/web"]
    assert web["pings"] == stack.scalar(
        "SELECT count(*) FROM pings WHERE flow_id = 'auction' AND source_id = 'web'"
    )
    a = by_recipient["bidder_a"]
    made = stack.scalar(
        "SELECT count(*) FROM ping_bids WHERE recipient_id = 'bidder_a' AND outcome = 'bid'"
    )
    total = stack.scalar(
        "SELECT sum(amount) FROM ping_bids WHERE recipient_id = 'bidder_a' AND outcome = 'bid'"
    )
    assert a["bids"] == made and a["pings"] >= made
    assert Decimal(str(a["average_bid"])) == (Decimal(str(total)) / made).quantize(Decimal("0.01"))
    assert by_recipient["silent_bidder"]["bids"] == 0 and by_recipient["silent_bidder"]["pings"] > 0


def test_a_buyer_that_won_an_auction_may_return_the_lead(
    stack: Stack, silent: threading.Event
) -> None:
    # given a lead bidder a bought at auction for 7.00
    ref = secrets.token_hex(4)
    bidders(stack, bid(7, "A-10"), NO_BID, a_post=ACCEPT)
    quoted = ping(stack, "web", state="TX", ref=ref).json()
    lead_id = post(stack, "web", quoted["ping_id"], phone_1="5125550110")["lead"]["id"]
    post_event = next(
        e["id"]
        for e in stack.show(lead_id)["events"]
        if e["type"] == "recipient" and e["recipient"] == "bidder_a"
    )

    # when it returns the lead by the post's event id
    returned = stack.ask_return(post_event, "Bad phone")

    # then the return is accepted under the auction step's rules and reverses the bid
    assert (returned.status_code, returned.json()["outcome"]) == (201, "success"), returned.text
    rows = [(r["kind"], r["party"], r["amount"]) for r in stack.show(lead_id)["ledger"]]
    assert ("return", "bidder_a", -7) in rows


def test_a_ping_older_than_its_ttl_cannot_be_posted(stack: Stack, silent: threading.Event) -> None:
    # given a ping answered with a bid, whose time to live has run out
    bidders(stack, bid(6, "A-11"), NO_BID)
    quoted = ping(stack, "web", state="TX", ref=secrets.token_hex(4)).json()
    assert quoted["outcome"] == "success"
    stack.execute("UPDATE pings SET expires_at = created_at WHERE id = :id", id=quoted["ping_id"])

    # when the source posts against it, then it is told the ping expired
    late = post(stack, "web", quoted["ping_id"], phone_1="5125550111")
    assert (late["outcome"], late["reason"], late["price"]) == ("failure", "ping expired", 0)


def test_a_bidder_taking_its_leads_by_download_is_owed_its_bids_up_to_its_revenue_cap(
    stack: Stack,
) -> None:
    # given a bidder with no price of its own, delivered by download, with a revenue cap
    # of 20.00, that bids 12.50 for every lead
    ref = secrets.token_hex(4)
    stack.recipient.script("/manual-bidder/ping", [bid(12.5, f"M-{n}") for n in range(3)])

    # when three leads are auctioned one after the other
    outcomes = []
    lead_ids = []
    for n in range(3):
        answer = stack.submit("manual_auction", data={"ref": f"{ref}-{n}"})
        assert answer.status_code == 201, answer.text
        lead_ids.append(answer.json()["lead"]["id"])
        report = stack.wait_done(lead_ids[-1])
        auction = next(e for e in report["events"] if e["type"] == "auction")
        outcomes.append((auction["outcome"], auction["recipient"]))

    # then the first two are sold to it and the third finds its revenue cap reached
    assert outcomes == [
        ("success", "manual_bidder"),
        ("success", "manual_bidder"),
        ("failure", None),
    ]

    # when the operator downloads its leads
    stack.leadflow("leads", "deliver", "--recipient", "manual_bidder")

    # then each lead sold is booked at its bid
    for lead_id in lead_ids[:2]:
        ledger = stack.show(lead_id)["ledger"]
        revenue = [(r["party"], r["amount"]) for r in ledger if r["kind"] == "revenue"]
        assert revenue == [("manual_bidder", 12.5)]


def test_a_ping_asks_every_auction_and_the_post_goes_to_the_next_auctions_bid_without_asking(
    stack: Stack,
) -> None:
    # given a flow of two auctions: a bids 10.00 in the first and rejects the post, c
    # bids 6.00 in the second and accepts
    ref = secrets.token_hex(4)
    bidders(stack, bid(10, "A-12"), NO_BID, a_post=REJECT)
    stack.recipient.script("/bidder-c/ping", [bid(6, "C-12")])
    stack.recipient.script("/bidder-c/post", [ACCEPT])
    quoted = requests.post(
        f"{stack.intake_url}/flows/two_auctions/sources/web/ping",
        data={"state": "TX", "ref": ref},
        timeout=30,
    ).json()

    # then the ping asked both auctions' bidders, and is quoted the first auction's bid
    assert (quoted["outcome"], quoted["price"]) == ("success", 10.0)
    asked_c = [r for r in stack.recipient.requests("/bidder-c/ping") if ref.encode() in r.body]
    assert len(asked_c) == 1

    # when the source posts and a rejects
    answer = requests.post(
        f"{stack.intake_url}/flows/two_auctions/sources/web/submit",
        data={"ping_id": quoted["ping_id"], "phone_1": "5125550112"},
        timeout=30,
    )

    # then c is posted its lead at the bid it made at ping time, and is not asked again
    assert answer.status_code == 201, answer.text
    assert answer.json()["outcome"] == "success"
    (sent,) = posts_for(stack, "/bidder-c/post", ref)
    assert sent["bid_id"] == "C-12"
    again = [r for r in stack.recipient.requests("/bidder-c/ping") if ref.encode() in r.body]
    assert len(again) == 1
