"""Money (SPEC section 15) through the real intake, router and delivery processes: a
source's cost is the intake answer's price and a ledger row; a recipient's revenue is
the price read from its answer, else its configured price; a lead failed at intake costs
nothing; the report's money agrees with the ledger to the cent."""

from __future__ import annotations

import csv
import io
import json
from decimal import Decimal
from pathlib import Path

from tests.e2e.conftest import Stack
from tests.support.recipient import Reply


def ledger_sum(stack: Stack, party: str, kind: str) -> Decimal:
    total = stack.scalar(
        "SELECT coalesce(sum(amount), 0) FROM ledger WHERE party = :party AND kind = :kind",
        party=party,
        kind=kind,
    )
    return Decimal(str(total)).quantize(Decimal("0.01"))


def test_a_source_is_answered_its_cost_and_each_sale_is_a_ledger_row(stack: Stack) -> None:
    # given a buyer answering a price, and one whose configured price is 9.00
    stack.recipient.script("/paying-buyer", [Reply(200, '{"outcome": "success", "price": 12.34}')])

    # when the paid source sends a lead from Texas (a cost rule: 4.00)
    answer = stack.submit("priced", "paid", data={"state": "TX", "last_name": "Lee"}).json()

    # then its answer's price is its cost, and the ledger has the cost and both sales
    assert (answer["outcome"], answer["price"]) == ("success", 4.0)
    report = stack.show(answer["lead"]["id"])
    assert report["lead"]["cost"] == 4
    rows = {(r["kind"], r["party"]): r["amount"] for r in report["ledger"]}
    assert rows == {
        ("cost", "priced/paid"): 4,
        ("revenue", "paying_buyer"): 12.34,
        ("revenue", "fixed_buyer"): 9,
    }
    text = stack.leadflow("leads", "show", answer["lead"]["id"]).stdout
    assert "ledger:" in text and "revenue" in text and "12.34" in text


def test_a_buyer_answering_a_price_of_0_owes_0_not_its_configured_price(stack: Stack) -> None:
    # given a buyer priced 9.00 whose answer says its price is 0
    stack.recipient.script("/free-taker", [Reply(200, '{"outcome": "success", "price": 0}')])

    # when it takes a lead
    answer = stack.submit("free_answer", data={"ref": "free"}).json()

    # then the answer's 0 stands (SPEC 15: the answer's price, else the configured one)
    assert (answer["outcome"], answer["price"]) == ("success", 0)
    rows = stack.show(answer["lead"]["id"])["ledger"]
    assert [r for r in rows if r["kind"] == "revenue" and r["amount"] != 0] == []


def test_a_lead_failed_at_intake_costs_nothing_and_a_source_without_cost_keeps_its_price(
    stack: Stack,
) -> None:
    refused = stack.submit("priced", "paid", data={"last_name": "Refused"}).json()
    assert (refused["outcome"], refused["price"]) == ("failure", 0)
    assert stack.show(refused["lead"]["id"])["ledger"] == []

    free = stack.submit("priced", "free", data={"state": "CA"}).json()
    report = stack.show(free["lead"]["id"])
    assert report["lead"]["cost"] is None
    assert [r["kind"] for r in report["ledger"]] == ["revenue", "revenue"]


def test_the_report_agrees_with_the_ledger_to_the_cent(stack: Stack) -> None:
    # given a few leads from both sources
    for state in ("CA", "TX", "NY"):
        stack.submit("priced", "paid", data={"state": state})
    stack.submit("priced", "free", data={"state": "CA"})
    stack.submit("priced", "paid", data={"last_name": "Refused"})

    # when the report by source and by recipient is asked for, as JSON and CSV
    by_source = json.loads(stack.leadflow("report", "--by", "source", "--format", "json").stdout)
    by_recipient = {
        r["recipient"]: r
        for r in csv.DictReader(
            io.StringIO(stack.leadflow("report", "--by", "recipient", "--format", "csv").stdout)
        )
    }

    # then each figure is the sum of the ledger's rows, and the counts are the leads'
    paid = next(r for r in by_source if r["source"] == "priced/paid")
    assert Decimal(str(paid["cost"])) == ledger_sum(stack, "priced/paid", "cost")
    assert paid["failed"] >= 1 and paid["accepted"] == paid["leads"] - paid["failed"]
    leads = stack.scalar(
        "SELECT count(*) FROM leads WHERE flow_id = 'priced' AND source_id = 'paid'"
    )
    assert paid["leads"] == leads
    fixed = by_recipient["fixed_buyer"]
    assert Decimal(fixed["revenue"]) == ledger_sum(stack, "fixed_buyer", "revenue")
    assert Decimal(fixed["profit"]) == Decimal(fixed["revenue"])
    assert int(fixed["sold"]) == stack.scalar(
        "SELECT count(*) FROM deliveries "
        "WHERE recipient_id = 'fixed_buyer' AND status = 'delivered'"
    )
    flow_total = json.loads(stack.leadflow("report", "--by", "flow", "--format", "json").stdout)
    priced = next(r for r in flow_total if r["flow"] == "priced")
    revenue = ledger_sum(stack, "paying_buyer", "revenue") + ledger_sum(
        stack, "fixed_buyer", "revenue"
    )
    cost = ledger_sum(stack, "priced/paid", "cost")
    assert Decimal(str(priced["profit"])) == revenue - cost
    assert "profit" in stack.leadflow("report", "--by", "day").stdout


def test_a_manual_recipient_owes_its_price_when_its_leads_are_downloaded(
    stack: Stack, tmp_path: Path
) -> None:
    # given a lead waiting for a manual recipient whose price is 6.00
    lead_id = stack.submit("desk", "web", data={"state": "CA"}).json()["lead"]["id"]
    assert [r["kind"] for r in stack.show(lead_id)["ledger"]] == []

    # when the operator downloads the recipient's pending leads
    stack.leadflow("leads", "deliver", "--recipient", "priced_desk", "-o", str(tmp_path / "d.csv"))

    # then the lead is sold and the recipient owes its price, once
    rows = stack.show(lead_id)["ledger"]
    assert [(r["kind"], r["party"], r["amount"]) for r in rows] == [("revenue", "priced_desk", 6)]
    assert stack.scalar("SELECT sold FROM leads WHERE id = :id", id=lead_id)
