"""Retry tiers on a real RabbitMQ, with handlers on the runtime's threads: a failed message
waits in a TTL queue (not in a worker), comes back, and is parked in <queue>.XQ with its
history when the schedule is used up."""

from __future__ import annotations

import threading
import time
from typing import Any
from urllib.parse import unquote, urlsplit

from shared.errors import TransientError
from shared.messaging import DeliverEmail, FeedbackAccepted, Message, ParkedMessage
from tests.support.infra import rabbitmqctl, wait_for
from tests.support.queues import get_parked, publish_messages, publish_until_parked, queue_counts
from tests.support.workers import running


def test_a_message_failing_twice_waits_in_the_retry_tiers_then_succeeds(
    queues: tuple[str, str],
) -> None:
    broker_url, queue_type = queues
    # given a handler that fails twice with a transient error, then succeeds
    calls: list[float] = []
    done = threading.Event()

    def handler(message: Message) -> None:
        calls.append(time.monotonic())
        if len(calls) <= 2:
            raise TransientError("recipient busy", schedule=[6.0, 0.3])
        done.set()

    with running(broker_url, "feedback", handler, queue_type=queue_type):
        # when a message is published
        publish_messages(
            broker_url, FeedbackAccepted(lead_id="l1", event_id="e1", feedback_event_id="f1")
        )

        if queue_type == "classic":  # (quorum queues report their counts with a delay)
            # then while it waits for its first retry it sits in the 6 s tier, not in a worker
            # (long enough for rabbitmqctl, which takes seconds to start, to see it there)
            wait_for(
                lambda: queue_counts(broker_url).get("feedback.retry.6000", (0, 0))[0] == 1,
                timeout=5,
                message="message in the retry tier",
            )
            assert queue_counts(broker_url)["feedback"] == (0, 0)
        # and it comes back after each tier's delay and succeeds on the third attempt
        assert done.wait(30)
    assert len(calls) == 3
    assert calls[1] - calls[0] >= 5.9
    assert calls[2] - calls[1] >= 0.25
    assert get_parked(broker_url, "feedback") == []
    # and the work queue and its dead-letter queue are of the type asked for
    types = declared_types(broker_url)
    assert types["feedback"] == types["feedback.XQ"] == queue_type


def declared_types(broker_url: str) -> dict[str, str]:
    """Each queue of the broker URL's vhost with its type, as RabbitMQ reports it."""
    vhost = unquote(urlsplit(broker_url).path.lstrip("/"))
    listed = rabbitmqctl("list_queues", "-p", vhost, "--no-table-headers", "name", "type")
    return dict(line.split("\t")[:2] for line in listed.splitlines() if "\t" in line)


def test_a_message_failing_always_is_parked_in_the_dead_letter_queue_with_its_history(
    queues: tuple[str, str],
) -> None:
    broker_url, queue_type = queues
    # given a handler that always fails transiently, with two retries allowed
    calls: list[int] = []
    exhausted: list[tuple[Any, str]] = []
    parked: list[ParkedMessage] = []

    def handler(message: Message) -> None:
        calls.append(1)
        raise TransientError(f"Server error (HTTP 503), call {len(calls)}", schedule=[0.2, 0.2])

    with running(
        broker_url,
        "email_delivery",
        handler,
        on_exhausted=lambda m, reason: exhausted.append((m, reason)),
        parked=parked,
        queue_type=queue_type,
    ):
        # when a message is published, then after three attempts it lands in email_delivery.XQ
        message = DeliverEmail(recipient_id="buyer", lead_id="l2", event_id="e2")
        bodies = publish_until_parked(broker_url, message)
    assert len(calls) == 3
    assert len(bodies) == 1
    failures = bodies[0]["options"]["failures"]
    assert [f["attempt"] for f in failures] == [1, 2, 3]
    assert failures[-1]["reason"] == "Server error (HTTP 503), call 3"
    # and the exhausted hook saw the typed message once, and the mirror recorded it
    assert exhausted == [(message, "Server error (HTTP 503), call 3")]
    assert len(parked) == 1
    assert parked[0].attempts == 3
    assert parked[0].payload["event_id"] == "e2"
