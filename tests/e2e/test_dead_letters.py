"""Dead letters through the real workers and the operator's commands: a delivery that
always fails is parked, listed and shown; replayed after the recipient is fixed it is
delivered; a replay of a delivery that has since succeeded changes nothing; purge."""

from __future__ import annotations

import json
from typing import Any

from tests.e2e.conftest import Stack
from tests.support.infra import wait_for
from tests.support.recipient import Reply


def park_a_lead(stack: Stack) -> str:
    stack.recipient.script("/replayable", [Reply(503, "down")])
    lead_id = stack.submit("http_replay").json()["lead"]["id"]
    report = stack.wait_done(lead_id)
    assert report["deliveries"][0]["status"] == "error"
    wait_for(
        lambda: lead_id in stack.leadflow("dead", "list", "--lead", lead_id).stdout,
        timeout=15,
        message="the dead letter to be listed",
    )
    return lead_id


def sent_to(stack: Stack, lead_id: str) -> int:
    return sum(lead_id in r.body.decode() for r in stack.recipient.requests("/replayable"))


def test_a_parked_delivery_is_listed_and_shown_with_why(stack: Stack) -> None:
    lead_id = park_a_lead(stack)
    listing = stack.leadflow("dead", "list", "--recipient", "http_replayable").stdout
    line = next(row for row in listing.splitlines() if lead_id in row)
    assert "http_delivery" in line
    assert "Server error (HTTP 503)" in line
    shown = stack.leadflow("dead", "show", lead_id).stdout
    assert "attempt 1" in shown and "attempt 2" in shown
    assert "503" in shown
    # the filters every dead command takes, the queue also named as its dead-letter queue
    assert stack.leadflow("dead", "show", "--lead", lead_id).stdout == shown
    for queue in ("http_delivery.XQ", "http-delivery"):
        listed = stack.leadflow("dead", "list", "--queue", queue, "--lead", lead_id, "--yes")
        assert lead_id in listed.stdout


def test_a_replayed_delivery_runs_again_and_the_step_and_price_are_updated(stack: Stack) -> None:
    # given a parked delivery (two attempts, both 503)
    lead_id = park_a_lead(stack)
    assert sent_to(stack, lead_id) == 2

    # when the recipient is fixed and the operator replays it
    stack.recipient.script("/replayable", [Reply(200, '{"price": 3.5}')])
    out = stack.leadflow("dead", "replay", "--lead", lead_id, input="")  # it does not ask
    assert "1 message" in out.stderr

    # then the delivery runs again, succeeds, and the step and the lead's price say so
    def delivered() -> dict[str, Any] | None:
        report = stack.show(lead_id)
        return report if report["deliveries"][0]["status"] == "delivered" else None

    report = wait_for(delivered, timeout=20, message="the replayed delivery")
    assert report["events"][0]["outcome"] == "success"
    wait_for(
        lambda: stack.show(lead_id)["lead"]["price"] == 3.5,
        timeout=10,
        message="the lead's price",
    )
    assert sent_to(stack, lead_id) == 3
    assert lead_id not in stack.leadflow("dead", "list").stdout

    # and replaying it again (its delivery has since succeeded) changes nothing
    row_id = stack.scalar("SELECT id FROM dead_letters WHERE lead_id = :id", id=lead_id)
    engine_sql = "UPDATE dead_letters SET state = 'parked' WHERE id = :id"
    stack.execute(engine_sql, id=row_id)
    before = stack.show(lead_id)
    stack.leadflow("dead", "replay", "--lead", lead_id, "--yes")
    wait_for(
        lambda: (
            stack.scalar("SELECT state FROM dead_letters WHERE id = :id", id=row_id) == "replayed"
        ),
        timeout=10,
        message="replayed",
    )
    assert stack.show(lead_id) == before
    assert sent_to(stack, lead_id) == 3


def test_purge_asks_for_confirmation_then_removes_parked_messages(stack: Stack) -> None:
    lead_id = park_a_lead(stack)
    refused = stack.leadflow("dead", "purge", "--lead", lead_id, check=False, input="n\n")
    assert refused.returncode != 0
    assert lead_id in stack.leadflow("dead", "list").stdout
    stack.leadflow("dead", "purge", "--lead", lead_id, input="y\n")
    assert lead_id not in stack.leadflow("dead", "list").stdout
    assert (
        json.loads(stack.leadflow("leads", "show", lead_id, "--json").stdout)["deliveries"][0][
            "status"
        ]
        == "error"
    )


def test_purge_without_a_filter_asks_about_every_parked_message(stack: Stack) -> None:
    # given a parked message
    lead_id = park_a_lead(stack)

    # when purge is run without a filter and the operator answers no
    refused = stack.leadflow("dead", "purge", check=False, input="n\n")

    # then it asked about all of them, and nothing went
    assert refused.returncode != 0
    assert "parked message(s)? This cannot be undone" in refused.stdout
    assert lead_id in stack.leadflow("dead", "list").stdout
