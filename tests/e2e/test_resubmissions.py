"""Resubmissions (SPEC section 14): the same submission sent again gets the first one's
answer, through the real intake, router and delivery processes; nothing new is stored
or routed."""

from __future__ import annotations

import secrets
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

from tests.e2e.conftest import Stack, start_intake, stop_process, wait_healthy
from tests.support.recipient import Reply


def unique_phone() -> str:
    return f"512555{secrets.randbelow(10_000):04d}"


def stored(stack: Stack, phone: str) -> int:
    return int(
        stack.scalar(
            "SELECT count(*) FROM leads WHERE flow_id = 'resubmit' "
            "AND CAST(fields AS TEXT) LIKE :p",
            p=f"%{phone}%",
        )
    )


def test_the_same_body_sent_again_within_the_window_gets_the_first_lead(stack: Stack) -> None:
    # given a lead that went through its flow
    phone = unique_phone()
    first = stack.submit("resubmit", data={"phone_1": phone, "state": "TX"})
    assert first.json()["outcome"] == "success"

    # when the source sends the very same body again
    second = stack.submit("resubmit", data={"phone_1": phone, "state": "TX"})

    # then it is answered 201 with the same lead and its outcome as it stands now
    assert second.status_code == 201
    assert second.json() == first.json()
    # and nothing new was stored or sent
    assert stored(stack, phone) == 1
    lead_id = first.json()["lead"]["id"]
    sent = [r for r in stack.recipient.requests("/resubmit-buyer") if lead_id in r.body.decode()]
    assert len(sent) == 1


def test_the_same_idempotency_key_with_another_body_gets_the_first_lead(stack: Stack) -> None:
    # given a submission carrying an Idempotency-Key
    phone, key = unique_phone(), secrets.token_hex(8)
    first = stack.submit(
        "resubmit", data={"phone_1": phone, "state": "TX"}, headers={"Idempotency-Key": key}
    )

    # when a later one carries the same key, with a body that differs
    second = stack.submit(
        "resubmit", data={"phone_1": phone, "state": "OK"}, headers={"Idempotency-Key": key}
    )

    # then it gets the first lead
    assert second.json()["lead"]["id"] == first.json()["lead"]["id"]
    assert stored(stack, phone) == 1


def test_another_body_or_a_window_of_0_makes_a_new_lead(stack: Stack) -> None:
    # given one submission
    phone = unique_phone()
    first = stack.submit("resubmit", data={"phone_1": phone, "state": "TX"})

    # when another body comes, and the same body twice to a flow whose window is 0
    other = stack.submit("resubmit", data={"phone_1": phone, "state": "OK"})
    off = [stack.submit("resubmit_off", data={"phone_1": phone}) for _ in range(2)]

    # then each is a lead of its own
    assert other.json()["lead"]["id"] != first.json()["lead"]["id"]
    assert off[0].json()["lead"]["id"] != off[1].json()["lead"]["id"]


def test_a_resubmitted_failure_gets_the_same_failure_again(stack: Stack) -> None:
    # given a lead refused at intake
    phone = unique_phone()
    first = stack.submit("resubmit", data={"phone_1": phone, "state": "AK"})
    assert first.json()["outcome"] == "failure"

    # when it is sent again
    second = stack.submit("resubmit", data={"phone_1": phone, "state": "AK"})

    # then the answer is the same, lead id included
    assert second.json() == first.json()
    assert stored(stack, phone) == 1


def test_copies_sent_at_once_to_two_intake_processes_store_one_lead(
    stack: Stack, tmp_path: Path
) -> None:
    # given a second intake process beside the stack's
    log = tmp_path / "intake-2.log"
    process, url = start_intake(stack, log)
    try:
        wait_healthy(f"{url}/healthz", process, log)
        phone = unique_phone()
        urls = [stack.intake_url, url] * 10

        # when twenty copies of one submission arrive at once, half at each
        def post(base: str) -> requests.Response:
            return requests.post(
                f"{base}/flows/resubmit/sources/web/submit",
                data={"phone_1": phone, "state": "TX"},
                timeout=30,
            )

        with ThreadPoolExecutor(20) as pool:
            answers = list(pool.map(post, urls))
    finally:
        stop_process(process)

    # then every copy is answered with the one lead that was stored
    assert {a.status_code for a in answers} == {201}
    assert len({a.json()["lead"]["id"] for a in answers}) == 1
    assert stored(stack, phone) == 1


def test_a_lead_still_queued_sent_again_is_answered_with_its_cost(stack: Stack) -> None:
    # given a lead of a source paid 2.50, answered at receipt, whose buyer holds it
    released = threading.Event()
    stack.recipient.script(
        "/resubmit-held-buyer", [Reply(200, '{"outcome": "success"}', hold=released)]
    )
    try:
        phone = unique_phone()
        first = stack.submit("resubmit_priced", data={"phone_1": phone})
        assert (first.json()["outcome"], first.json()["price"]) == ("queued", 2.5)

        # when the source sends the same body again while the lead is still queued
        second = stack.submit("resubmit_priced", data={"phone_1": phone})

        # then it gets the first answer as GET /leads/{id} gives it: queued, paid 2.50
        lead_id = first.json()["lead"]["id"]
        assert second.json() == first.json()
        shown = requests.get(f"{stack.intake_url}/leads/{lead_id}", timeout=10).json()
        assert (shown["outcome"], shown["price"]) == ("queued", 2.5)
    finally:
        released.set()
