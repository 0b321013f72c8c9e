"""The router through real processes: waterfalls, duplicates, a router killed mid-flow."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pika
import pytest

from shared.messaging import DeliverHttp, LeadSubmitted, StepCompleted
from tests.e2e.conftest import Stack, start_process
from tests.support.infra import rabbitmqctl, wait_for
from tests.support.queues import publish_messages, queue_counts
from tests.support.recipient import Reply

#: Kill the stack's router, start a replacement.
RouterControls = tuple[Callable[[], None], Callable[[], None]]

ACCEPT = '{"result": "accepted", "price": %s}'


def requests_for(stack: Stack, path: str, lead_id: str) -> int:
    return sum(1 for r in stack.recipient.requests(path) if lead_id in r.body.decode())


def test_a_waterfall_sends_the_lead_on_when_the_first_recipient_rejects_it(stack: Stack) -> None:
    # given a first recipient that rejects and a second that accepts
    stack.recipient.script("/first-choice", [Reply(200, '{"result": "rejected", "reason": "dup"}')])
    stack.recipient.script("/second-choice", [Reply(200, ACCEPT % 9)])

    # when a lead is posted
    answer = stack.submit("router_waterfall", data={"phone_1": "5125550101", "state": "TX"}).json()

    # then both recipients saw it, the flow succeeded with the second's price
    lead_id = answer["lead"]["id"]
    assert (answer["outcome"], answer["price"]) == ("success", 9)
    assert requests_for(stack, "/first-choice", lead_id) == 1
    assert requests_for(stack, "/second-choice", lead_id) == 1
    steps = [(e["type"], e["recipient"], e["outcome"]) for e in stack.show(lead_id)["events"]]
    assert steps == [
        ("filter", None, "continue"),
        ("recipient", "first_choice", "failure"),
        ("filter", None, "continue"),
        ("recipient", "second_choice", "success"),
        ("source", None, "success"),
    ]
    first = stack.show(lead_id)["events"][1]
    assert first["reason"] == "dup"


def test_a_stop_when_sold_filter_keeps_the_second_recipient_from_receiving_the_lead(
    stack: Stack,
) -> None:
    stack.recipient.script("/first-choice", [Reply(200, ACCEPT % 4)])
    answer = stack.submit("router_waterfall", data={"phone_1": "5125550102"}).json()
    lead_id = answer["lead"]["id"]
    assert (answer["outcome"], answer["price"]) == ("success", 4)
    assert requests_for(stack, "/second-choice", lead_id) == 0


def test_a_filter_stops_the_flow_with_its_templated_reason(stack: Stack) -> None:
    answer = stack.submit(
        "router_waterfall", data={"phone_1": "5555555555", "state": "Oklahoma"}
    ).json()
    assert (answer["outcome"], answer["reason"]) == ("failure", "Test lead (OK)")


def queues_drained(stack: Stack) -> bool:
    vhost = pika.URLParameters(stack.env["LEADFLOW_BROKER_URL"]).virtual_host
    out = rabbitmqctl("list_queues", "-p", vhost, "name", "messages", "--no-table-headers")
    counts = dict(line.split() for line in out.splitlines() if len(line.split()) == 2)
    return all(counts.get(q, "0") == "0" for q in ("router", "http_delivery"))


def test_lead_and_step_messages_delivered_twice_change_nothing_the_second_time(
    stack: Stack,
) -> None:
    # given a lead that went through the flow
    stack.recipient.script("/first-choice", [Reply(200, ACCEPT % 5)])
    lead_id = stack.submit("router_waterfall", data={"phone_1": "5125550103"}).json()["lead"]["id"]
    before = stack.show(lead_id)
    step = before["events"][1]

    # when its lead message, its step result and its delivery are published again, twice
    duplicates = [
        LeadSubmitted(lead_id=lead_id),
        StepCompleted(lead_id=lead_id, event_id=step["id"]),
        DeliverHttp(lead_id=lead_id, event_id=step["id"], recipient_id="first_choice"),
    ]
    publish_messages(stack.env["LEADFLOW_BROKER_URL"], *duplicates, *duplicates)
    wait_for(lambda: queues_drained(stack), timeout=20, message="queues drained")

    # then the recipient was not sent the lead again and the record is unchanged
    assert requests_for(stack, "/first-choice", lead_id) == 1
    assert stack.show(lead_id) == before


def quiet(stack: Stack, held: int) -> bool:
    """The router's queue is empty and http_delivery holds only the ``held`` deliveries
    (read twice, so a message moving between the two queues is not missed)."""

    def once() -> bool:
        counts = queue_counts(stack.env["LEADFLOW_BROKER_URL"])
        router, deliveries = (counts.get(q, (0, 0)) for q in ("router", "http_delivery"))
        return router == (0, 0) and deliveries == (0, held)

    return once() and once()


def short_retries_empty(stack: Stack) -> bool:
    """No message waits in a router or http_delivery retry tier of 15 s or less (where
    duplicates of a delivery another worker holds wait before they look again)."""
    counts = queue_counts(stack.env["LEADFLOW_BROKER_URL"])
    return all(
        ready + unacked == 0
        for name, (ready, unacked) in counts.items()
        if name.startswith(("router.retry.", "http_delivery.retry."))
        and int(name.rsplit(".", 1)[1]) <= 15_000
    )


def test_lead_and_step_messages_delivered_again_while_the_lead_waits_change_nothing(
    stack: Stack,
) -> None:
    # given a lead past its first recipient, waiting at a second one that holds the request
    held = threading.Event()
    stack.recipient.script("/after-slow", [Reply(200, '{"outcome": "success"}')])
    stack.recipient.script("/held-buyer", [Reply(200, '{"outcome": "success"}', hold=held)])
    try:
        lead_id = stack.submit("router_waits_second", data={"phone_1": "5125550105"}).json()[
            "lead"
        ]["id"]
        wait_for(
            lambda: requests_for(stack, "/held-buyer", lead_id) == 1,
            timeout=20,
            message="the second recipient to be called",
        )
        wait_for(lambda: quiet(stack, held=1), timeout=20, message="only the held delivery")
        before = stack.show(lead_id)
        first, second = (e for e in before["events"] if e["type"] == "recipient")
        assert (first["outcome"], second["outcome"]) == ("success", None)

        # when its lead message, the first step's result and both hand-offs arrive again, twice
        duplicates = [
            LeadSubmitted(lead_id=lead_id),
            StepCompleted(lead_id=lead_id, event_id=first["id"]),
            DeliverHttp(lead_id=lead_id, event_id=first["id"], recipient_id="after_slow"),
            DeliverHttp(lead_id=lead_id, event_id=second["id"], recipient_id="held_buyer"),
        ]
        publish_messages(stack.env["LEADFLOW_BROKER_URL"], *duplicates, *duplicates)
        wait_for(lambda: quiet(stack, held=1), timeout=20, message="the duplicates handled")

        # then nothing changed while the lead waits
        assert stack.show(lead_id) == before
    finally:
        held.set()

    # and once the held request is answered the flow ends as it would have without them
    after = stack.wait_done(lead_id)
    wait_for(lambda: short_retries_empty(stack) and quiet(stack, held=0), timeout=60)
    assert requests_for(stack, "/after-slow", lead_id) == 1
    assert requests_for(stack, "/held-buyer", lead_id) == 1
    assert stack.show(lead_id) == after
    assert [(e["type"], e["recipient"], e["outcome"]) for e in after["events"]] == [
        ("recipient", "after_slow", "success"),
        ("recipient", "held_buyer", "success"),
        ("source", None, "success"),
    ]
    assert [d["status"] for d in after["deliveries"]] == ["delivered", "delivered"]
    assert lead_id not in stack.leadflow("dead", "list").stdout


@pytest.fixture
def replacement_router(stack: Stack, tmp_path: Path) -> Iterator[RouterControls]:
    """Kill the stack's router with SIGKILL; the test starts a new one when it wants."""
    started: list[subprocess.Popen[bytes]] = []

    def kill_stack_router() -> None:
        pids = stack.service_pids("router")
        assert pids, "no router is running"
        for pid in pids:  # one process per copy
            os.kill(pid, signal.SIGKILL)
        stack.killed.append("router.1")

    def start_router() -> None:
        log = tmp_path / "router.log"
        started.append(
            start_process([sys.executable, "-m", "services.cli", "router"], stack.env, log)
        )

    yield kill_stack_router, start_router
    stack.keep_running.extend(started)


def test_a_router_killed_in_the_middle_of_a_flow_loses_nothing(
    stack: Stack, replacement_router
) -> None:
    kill_router, start_router = replacement_router
    # given a lead waiting at a first recipient that answers only when the test lets it
    held = threading.Event()
    stack.recipient.script("/slow-buyer", [Reply(200, '{"outcome": "success"}', hold=held)])
    lead_id = stack.submit("router_two_steps", data={"phone_1": "5125550104"}).json()["lead"]["id"]
    wait_for(
        lambda: requests_for(stack, "/slow-buyer", lead_id) == 1,
        timeout=20,
        message="the slow recipient to be called",
    )

    # when the router is killed while the delivery is in flight, and new leads come
    kill_router()
    held.set()
    later = stack.submit("router_two_steps", data={"phone_1": "5125550105"}).json()["lead"]["id"]
    given_up = stack.submit("router_after_give_up", data={"phone_1": "5125550106"})
    given_up_id = given_up.json()["lead"]["id"]

    # then the lead in flight goes on to its next step without the router (the HTTP
    # worker that recorded the answer moved it on), and so does a new lead (intake routed
    # its first step, the HTTP worker the rest)
    for done_id in (lead_id, later):
        report = stack.wait_done(done_id)
        assert [d["status"] for d in report["deliveries"]] == ["delivered", "delivered"]
        assert requests_for(stack, "/after-slow", done_id) == 1
    # and a step result that goes back through the router's queue (a delivery that gave up)
    # waits there until a router is back, then the flow goes on
    wait_for(
        lambda: stack.show(given_up_id)["deliveries"][0]["status"] == "error",
        timeout=30,
        message="the delivery to give up",
    )
    step_result_waits = queue_counts(stack.env["LEADFLOW_BROKER_URL"]).get("router", (0, 0))
    # (a copy of the delivery message, which RabbitMQ may hand out again under load, moves
    # the lead on from http-delivery too: routing is idempotent, the lead goes on once)
    if stack.show(given_up_id)["lead"]["outcome"] == "queued":
        assert step_result_waits[0] >= 1
    start_router()
    report = stack.wait_done(given_up_id)
    assert [d["status"] for d in report["deliveries"]] == ["error", "delivered"]
