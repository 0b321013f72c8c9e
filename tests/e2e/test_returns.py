"""Returns with approval (SPEC section 15) through the real intake, delivery and feedback
processes: an automatic return reverses the revenue (and, with ``chargeback_returns``,
the source's cost once) and is forwarded; a manual one waits for `leadflow returns
approve|reject`; a recipient's returns may not pass ``max_percent`` of a month's
purchases."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from tests.e2e.conftest import Stack
from tests.support.infra import wait_for


def sold(stack: Stack, flow: str, source: str, path: str) -> tuple[str, str]:
    """A lead sold through ``flow``: (its id, the step event id the buyer at ``path`` got)."""
    lead_id = stack.submit(flow, source).json()["lead"]["id"]
    stack.wait_done(lead_id)
    (got,) = [r.json() for r in stack.recipient.requests(path) if r.json()["lead_id"] == lead_id]
    return lead_id, got["event_id"]


def give_back(stack: Stack, event_id: str, reason: str = "Bad phone") -> dict[str, Any]:
    response = stack.ask_return(event_id, reason)
    return {"status": response.status_code, **response.json()}


def ledger_of(stack: Stack, lead_id: str) -> list[tuple[str, str, float]]:
    return sorted((r["kind"], r["party"], r["amount"]) for r in stack.show(lead_id)["ledger"])


def status_of(stack: Stack, event_id: str) -> str:
    return str(stack.scalar("SELECT status FROM deliveries WHERE event_id = :e", e=event_id))


def forwarded(stack: Stack, lead_id: str) -> list[Any]:
    return [r for r in stack.recipient.requests("/returns-source") if lead_id in r.body.decode()]


def test_an_automatic_return_reverses_the_revenue_and_the_cost_and_is_forwarded(
    stack: Stack,
) -> None:
    # given a lead that cost 3.00 and was sold for 15.00 and 20.00
    lead_id, event_id = sold(stack, "returnable", "charged", "/auto-return-buyer")

    # when the automatic buyer returns it
    answer = give_back(stack, event_id)

    # then it is accepted and returned, its revenue reversed and the source's cost
    # charged back, and the source is told
    assert (answer["status"], answer["outcome"]) == (201, "success")
    assert status_of(stack, event_id) == "returned"
    assert ledger_of(stack, lead_id) == [
        ("chargeback", "returnable/charged", -3),
        ("cost", "returnable/charged", 3),
        ("return", "auto_return_buyer", -15),
        ("revenue", "auto_return_buyer", 15),
        ("revenue", "manual_return_buyer", 20),
    ]
    wait_for(lambda: forwarded(stack, lead_id), timeout=15, message="the return forwarded")


def test_a_manual_return_waits_for_an_operator_who_approves_it(stack: Stack) -> None:
    # given a lead sold to the buyer whose returns need approval
    lead_id, event_id = sold(stack, "returnable", "charged", "/manual-return-buyer")

    # when it returns the lead
    answer = give_back(stack, event_id, "Duplicate")

    # then the return is accepted but waits: nothing reversed, nothing forwarded
    assert (answer["status"], answer["outcome"]) == (201, "success")
    assert status_of(stack, event_id) == "return requested"
    listed = json.loads(stack.leadflow("returns", "list", "--json").stdout)
    (waiting,) = [r for r in listed if r["event_id"] == event_id]
    assert (waiting["status"], waiting["lead_id"], waiting["reason"]) == (
        "requested",
        lead_id,
        "Duplicate",
    )
    assert ("return", "manual_return_buyer", -20) not in ledger_of(stack, lead_id)
    assert give_back(stack, event_id)["outcome"] == "failure"  # one waiting return at a time

    # when an operator approves it
    approved = stack.leadflow("returns", "approve", waiting["id"])

    # then the revenue is reversed, the cost charged back, and the source is told
    assert "approved" in approved.stdout
    assert status_of(stack, event_id) == "returned"
    rows = ledger_of(stack, lead_id)
    assert ("return", "manual_return_buyer", -20) in rows
    assert ("chargeback", "returnable/charged", -3) in rows
    wait_for(lambda: forwarded(stack, lead_id), timeout=15, message="the return forwarded")
    again = stack.leadflow("returns", "approve", waiting["id"], check=False)
    assert again.returncode != 0 and "approved already" in again.stderr


def test_a_rejected_return_puts_the_delivery_back_to_delivered(stack: Stack) -> None:
    lead_id, event_id = sold(stack, "returnable", "charged", "/manual-return-buyer")
    give_back(stack, event_id)
    (waiting,) = [
        r
        for r in json.loads(stack.leadflow("returns", "list", "--json").stdout)
        if r["event_id"] == event_id
    ]

    stack.leadflow("returns", "reject", waiting["id"], "--reason", "Lead was valid")

    assert status_of(stack, event_id) == "delivered"
    listed = json.loads(stack.leadflow("returns", "list", "--status", "rejected", "--json").stdout)
    (rejected,) = [r for r in listed if r["id"] == waiting["id"]]
    assert rejected["decision_reason"] == "Lead was valid"
    assert not any(kind in ("return", "chargeback") for kind, _, _ in ledger_of(stack, lead_id))


def test_returns_past_max_percent_of_the_months_purchases_are_refused(stack: Stack) -> None:
    # given a buyer allowed 50% returns that bought two leads this month
    first = sold(stack, "limited", "web", "/limited-buyer")
    second = sold(stack, "limited", "web", "/limited-buyer")

    # when it returns both
    one, two = give_back(stack, first[1]), give_back(stack, second[1])

    # then the first (1 of 2: 50%) is accepted and the second (2 of 2) refused
    assert one["outcome"] == "success"
    assert (two["outcome"], two["reason"]) == ("failure", "Return limit reached")
    assert status_of(stack, second[1]) == "delivered"


def test_returns_asked_at_once_still_stop_at_max_percent(stack: Stack) -> None:
    # given a buyer allowed 10% returns that bought twenty leads this month
    with ThreadPoolExecutor(8) as pool:
        events = [
            e for _, e in pool.map(lambda _: sold(stack, "tenth", "web", "/tenth-buyer"), range(20))
        ]

    # when it asks to return all twenty at once
    with ThreadPoolExecutor(20) as pool:
        answers = list(pool.map(lambda e: give_back(stack, e), events))

    # then two are accepted (2 of 20: 10%) and eighteen refused
    outcomes = sorted((a["outcome"], a.get("reason")) for a in answers)
    assert outcomes.count(("success", None)) == 2, outcomes
    assert outcomes.count(("failure", "Return limit reached")) == 18, outcomes
