"""One lead end to end through the real processes started by `leadflow up`."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from tests.e2e.conftest import Stack
from tests.support.infra import wait_for
from tests.support.recipient import Reply


def test_a_posted_lead_reaches_the_recipient_and_is_reported_delivered(stack: Stack) -> None:
    # given a recipient that accepts leads at a price
    stack.recipient.script("/acme", [Reply(200, '{"outcome": "success", "price": 4.25}')])

    # when a source posts a lead (after_flow: the answer waits for the flow)
    response = stack.submit("spine", data={"first_name": "Ann", "phone_1": "(512) 555-1212"})

    # then the answer carries the flow's outcome and the recipient's price
    assert response.status_code == 201
    answer = response.json()
    assert answer["outcome"] == "success"
    assert answer["price"] == 4.25
    lead_id = answer["lead"]["id"]
    # and the recipient received the mapped fields with the step's event id
    received = [r for r in stack.recipient.requests("/acme") if r.json()["lc_lead_id"] == lead_id]
    assert len(received) == 1
    body = received[0].json()
    assert body["fname"] == "Ann"
    assert body["phone"] == "5125551212"
    assert body["vendor"] == "leadflow"
    assert received[0].headers["Idempotency-Key"] == body["lc_event_id"]
    # and `leadflow leads show --json` reports the step's success and the delivery
    report = stack.show(lead_id)
    assert report["lead"]["outcome"] == "success"
    step = next(e for e in report["events"] if e["type"] == "recipient")
    assert step["id"] == body["lc_event_id"]
    assert step["outcome"] == "success"
    assert step["price"] == 4.25
    assert report["events"][-1]["type"] == "source"
    assert report["events"][-1]["steps_processed"] == 1
    assert report["deliveries"][0]["status"] == "delivered"
    assert len(report["deliveries"][0]["attempts"]) == 1


def test_a_recipient_down_for_the_first_attempts_gets_the_lead_after_the_retries(
    stack: Stack,
) -> None:
    # given a recipient that fails twice with 503, then accepts
    stack.recipient.script("/flaky", [Reply(503, "busy"), Reply(503, "busy"), Reply(200, "ok")])

    # when a lead is posted
    response = stack.submit("retries", data={"phone_1": "5125550000"})
    assert response.status_code == 201
    assert response.json()["outcome"] == "queued"
    lead_id = response.json()["lead"]["id"]

    # then the lead is delivered on the third attempt, every attempt recorded
    report = stack.wait_done(lead_id)
    delivery = report["deliveries"][0]
    assert delivery["status"] == "delivered"
    assert [a["status"] for a in delivery["attempts"]] == [503, 503, 200]
    assert report["lead"]["outcome"] == "success"
    keys = {
        r.headers["Idempotency-Key"]
        for r in stack.recipient.requests("/flaky")
        if r.headers["Idempotency-Key"] == delivery["event_id"]
    }
    assert keys == {delivery["event_id"]}


def test_a_recipient_that_never_answers_ends_in_error_and_the_flow_goes_on(stack: Stack) -> None:
    # given a recipient nobody listens for, with one retry
    # when a lead is posted
    response = stack.submit("gone", data={"phone_1": "5125550001"})
    lead_id = response.json()["lead"]["id"]

    # then the step is an error with the connection failure, and the next step still runs
    report = stack.wait_done(lead_id)
    first, second = report["deliveries"]
    assert first["recipient"] == "unreachable"
    assert first["status"] == "error"
    assert first["dead_lettered"] is True
    assert len(first["attempts"]) == 2
    assert "Connection" in (first["attempts"][-1]["error"] or "")
    assert second["recipient"] == "call_center"
    assert second["status"] == "pending"
    step = next(e for e in report["events"] if e["recipient"] == "unreachable")
    assert step["outcome"] == "error"
    assert report["lead"]["outcome"] == "success"
    # and the dead letter is mirrored for operators
    wait_for(
        lambda: lead_id in stack.leadflow("dead", "list").stdout,
        timeout=10,
        message="dead letter listed",
    )


def recipient_step(report: dict[str, Any]) -> dict[str, Any]:
    (step,) = [e for e in report["events"] if e["type"] == "recipient"]
    return step


def test_a_delivered_steps_event_records_one_attempt_and_when_it_started_and_ended(
    stack: Stack,
) -> None:
    # given a recipient that accepts leads
    stack.recipient.script("/acme", [Reply(200, '{"outcome": "success", "price": 1}')])

    # when a lead is posted and delivered
    answer = stack.submit("spine", data={"first_name": "Bo", "phone_1": "5125551213"}).json()
    assert answer["outcome"] == "success"

    # then its recipient step event counts the one attempt and has its start, end and duration
    step = recipient_step(stack.show(answer["lead"]["id"]))
    assert step["attempts"] == 1
    assert step["started_at"] is not None and step["completed_at"] is not None
    assert datetime.fromisoformat(step["started_at"]) <= datetime.fromisoformat(
        step["completed_at"]
    )
    assert step["ms"] is not None and step["ms"] >= 0


def test_a_retried_steps_event_counts_every_attempt_made(stack: Stack) -> None:
    # given a recipient that fails twice with 503, then accepts
    stack.recipient.script("/flaky", [Reply(503, "busy"), Reply(503, "busy"), Reply(200, "ok")])

    # when a lead is posted and delivered after the retries
    lead_id = stack.submit("retries", data={"phone_1": "5125550002"}).json()["lead"]["id"]
    report = stack.wait_done(lead_id)

    # then the step event's attempts is the number of attempts the delivery recorded
    attempts = report["deliveries"][0]["attempts"]
    assert [a["status"] for a in attempts] == [503, 503, 200]
    step = recipient_step(report)
    assert step["outcome"] == "success"
    assert step["attempts"] == len(attempts) == 3
    assert datetime.fromisoformat(step["started_at"]) <= datetime.fromisoformat(
        step["completed_at"]
    )
    assert step["ms"] is not None
