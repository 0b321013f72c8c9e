"""Faults during a run, through real processes: workers killed with SIGKILL, RabbitMQ
stopped, the database unreachable. Each test prints its counts."""

from __future__ import annotations

import random
import subprocess
import sys
import time

import requests

from tests.faults.conftest import FaultStack, in_background


def report(name: str, counts: dict[str, int]) -> None:
    sys.stdout.write(f"\n{name}: " + ", ".join(f"{k} {v}" for k, v in counts.items()) + "\n")


def lead_ids(responses: list[requests.Response]) -> list[str]:
    assert all(r.status_code == 201 for r in responses), {r.status_code for r in responses}
    ids = [r.json()["lead"]["id"] for r in responses]
    assert len(set(ids)) == len(ids)
    return ids


def counts_once_done(
    fault_stack: FaultStack, responses: list[requests.Response], name: str
) -> dict[str, int]:
    """Every lead intake took (each answered 201, with an id of its own) finished: the
    stack's counts for them, printed under ``name``."""
    ids = lead_ids(responses)
    fault_stack.wait_all_done(ids, timeout=300)
    counts = fault_stack.counts(ids)
    report(name, counts)
    return counts


def test_workers_killed_with_sigkill_during_a_run_lose_no_lead_and_record_one_success_each(
    fault_stack: FaultStack,
) -> None:
    # given a run of 2,000 leads arriving over a few seconds
    thread, result = in_background(lambda: fault_stack.submit_many(2000))

    # when a random router or http-delivery process is killed five times and replaced
    for _ in range(5):
        time.sleep(2.0)
        service = random.choice(["router", "http-delivery"])
        fault_stack.kill(service)
        fault_stack.start(service)
    thread.join(300)

    # then every lead is delivered, none lost, each delivery recorded with one success
    counts = counts_once_done(fault_stack, result[0], "SIGKILL workers")
    assert counts["lost"] == 0
    assert counts["delivered"] == 2000
    assert counts["email_lost"] == 0
    assert fault_stack.scalar("SELECT count(*) FROM deliveries WHERE status <> 'delivered'") == 0
    assert (
        fault_stack.scalar(
            "SELECT count(*) FROM (SELECT event_id FROM delivery_attempts WHERE status = 200 "
            "GROUP BY event_id HAVING count(*) > 1) AS doubles"
        )
        == 0
    )


def rabbitmqctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", "-q", *args], check=True, capture_output=True, timeout=120)


def test_with_rabbitmq_stopped_during_a_run_intake_keeps_answering_and_every_lead_is_delivered(
    fault_stack: FaultStack,
) -> None:
    # given leads arriving steadily for about twelve seconds
    thread, result = in_background(lambda: fault_stack.submit_many(600, rate=50.0))

    # when RabbitMQ stops for five seconds in the middle of it
    time.sleep(3.0)
    rabbitmqctl("stop_app")
    try:
        time.sleep(5.0)
    finally:
        rabbitmqctl("start_app")
        rabbitmqctl("await_startup")
    thread.join(300)

    # then intake answered 201 to every one, and every lead is delivered once it is back
    counts = counts_once_done(fault_stack, result[0], "RabbitMQ stopped")
    assert counts["lost"] == 0
    assert counts["delivered"] == 600
    assert (counts["emailed"], counts["email_lost"]) == (600, 0)
    # and nothing was sent twice: what a worker held is recorded or waited for
    assert (counts["duplicates"], counts["email_duplicates"]) == (0, 0)


def test_with_the_database_unreachable_intake_answers_503_nothing_is_half_stored_and_all_resumes(
    fault_stack: FaultStack,
) -> None:
    # given leads arriving steadily
    thread, result = in_background(lambda: fault_stack.submit_many(600, rate=50.0, workers=8))

    # when the database is unreachable for five seconds in the middle of it
    time.sleep(3.0)
    fault_stack.db_proxy.cut()
    time.sleep(5.0)
    fault_stack.db_proxy.restore()
    thread.join(300)

    # then intake answered 201 or 503, never anything else, and every lead sent again
    # after a 503 (with its Idempotency-Key) was taken in the end
    responses = result[0]
    statuses = {r.status_code for r in responses}
    assert statuses <= {201, 503}, statuses
    assert 503 in statuses
    accepted = [r.json()["lead"]["id"] for r in responses if r.status_code == 201]
    assert len(accepted) == len(set(accepted)) == 600
    # and exactly the accepted leads are stored, once each and whole (a commit whose answer
    # was lost is found by the key the source sends again), and every one is delivered
    fault_stack.wait_all_done(accepted, timeout=300)
    assert fault_stack.scalar("SELECT count(*) FROM leads") == len(accepted)
    assert fault_stack.scalar("SELECT count(*) FROM events WHERE type = 'source'") == len(accepted)
    counts = fault_stack.counts(accepted)
    counts["refused_503"] = sum(1 for r in responses if r.status_code == 503)
    report("database unreachable", counts)
    assert counts["lost"] == 0
    assert (counts["emailed"], counts["email_lost"]) == (len(accepted), 0)
    # and nothing was sent twice: what was sent is recorded once the database is back
    assert (counts["duplicates"], counts["email_duplicates"]) == (0, 0)
