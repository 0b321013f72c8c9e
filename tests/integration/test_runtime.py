"""The worker runtime on a real RabbitMQ: retry tiers and dead-letter parking for handlers
on the runtime's threads and for coroutines, many messages in flight in one process, and a
graceful stop. A failed message waits in a TTL queue (not in a worker)."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote, urlsplit

import pika
import pytest

from shared.errors import PermanentError, TransientError
from shared.messaging import (
    DeliverEmail,
    DeliverHttp,
    Envelope,
    FeedbackAccepted,
    Message,
    ParkedMessage,
    StepCompleted,
)
from tests.support.infra import rabbit_vhost, rabbitmqctl, wait_for
from tests.support.queues import get_parked, publish_messages, publish_until_parked, queue_counts
from tests.support.workers import running


def handler_of(kind: str, work: Callable[[Message], None]) -> Any:
    """``work`` as the runtime's kind of handler: run on its threads, or a coroutine."""
    if kind == "thread":
        return work

    async def coroutine(message: Message) -> None:
        work(message)

    return coroutine


def declared_types(broker_url: str) -> dict[str, str]:
    """Each queue of the broker URL's vhost with its type, as RabbitMQ reports it."""
    vhost = unquote(urlsplit(broker_url).path.lstrip("/"))
    listed = rabbitmqctl("list_queues", "-p", vhost, "--no-table-headers", "name", "type")
    return dict(line.split("\t")[:2] for line in listed.splitlines() if "\t" in line)


@pytest.mark.parametrize("kind", ["thread", "coroutine"])
def test_a_message_failing_twice_waits_in_the_retry_tiers_then_succeeds(
    queues: tuple[str, str], kind: str
) -> None:
    broker_url, queue_type = queues
    # given a handler that fails twice with a transient error, then succeeds
    calls: list[tuple[float, Message]] = []
    done = threading.Event()

    def work(message: Message) -> None:
        calls.append((time.monotonic(), message))
        if len(calls) <= 2:
            raise TransientError("recipient busy", schedule=[6.0, 0.3])
        done.set()

    with running(broker_url, "feedback", handler_of(kind, work), queue_type=queue_type):
        # when a message is published
        message = FeedbackAccepted(lead_id="l1", event_id="e1", feedback_event_id="f1")
        publish_messages(broker_url, message)
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
    assert [m for _, m in calls] == [message, message, message]
    assert calls[1][0] - calls[0][0] >= 5.9
    assert calls[2][0] - calls[1][0] >= 0.25
    assert get_parked(broker_url, "feedback") == []
    # and the work queue and its dead-letter queue are of the type asked for
    types = declared_types(broker_url)
    assert types["feedback"] == types["feedback.XQ"] == queue_type


@pytest.mark.parametrize("kind", ["thread", "coroutine"])
def test_a_message_failing_always_is_parked_with_its_history_and_the_hook_runs(
    queues: tuple[str, str], kind: str
) -> None:
    broker_url, queue_type = queues
    # given a handler that always fails transiently, with two retries allowed
    exhausted: list[tuple[Message, str]] = []
    parked: list[ParkedMessage] = []
    calls: list[int] = []

    def work(message: Message) -> None:
        calls.append(1)
        raise TransientError(f"Server error (HTTP 503), call {len(calls)}", schedule=[0.2, 0.2])

    def on_exhausted(message: Message, reason: str) -> None:
        exhausted.append((message, reason))

    with running(
        broker_url,
        "email_delivery",
        handler_of(kind, work),
        on_exhausted=on_exhausted,
        parked=parked,
        queue_type=queue_type,
    ):
        # when a message is published, then after three attempts it lands in
        # email_delivery.XQ with every failure
        message = DeliverEmail(recipient_id="buyer", lead_id="l2", event_id="e2")
        bodies = publish_until_parked(broker_url, message)
    assert len(calls) == 3
    assert len(bodies) == 1
    failures = bodies[0]["options"]["failures"]
    assert [f["attempt"] for f in failures] == [1, 2, 3]
    assert failures[-1]["reason"] == "Server error (HTTP 503), call 3"
    # and the exhausted hook saw the typed message once, and the mirror recorded it
    assert exhausted == [(message, "Server error (HTTP 503), call 3")]
    assert [p.attempts for p in parked] == [3]
    assert parked[0].payload["event_id"] == "e2"


def test_a_permanent_failure_or_a_message_on_the_wrong_queue_is_parked_at_once(
    queues: tuple[str, str],
) -> None:
    broker_url, queue_type = queues
    # given a handler that refuses its message for good
    calls: list[Message] = []

    async def handler(message: Message) -> None:
        calls.append(message)
        raise PermanentError("unknown lead l3")

    with running(broker_url, "router", handler, queue_type=queue_type):
        # when one message fails permanently and one of another queue's kind arrives
        publish_messages(broker_url, StepCompleted(lead_id="l3", event_id="e3"))
        connection = pika.BlockingConnection(pika.URLParameters(broker_url))
        wrong = Envelope.of(
            FeedbackAccepted(lead_id="l4", event_id="e4", feedback_event_id="f")
        ).encode()
        connection.channel().basic_publish("", "router", wrong)
        connection.close()
        # then both are parked after one attempt, and the handler saw only the first
        bodies = wait_for(
            lambda: (lambda b: b if len(b) == 2 else None)(get_parked(broker_url, "router")),
            timeout=15,
            message="two parked messages",
        )
    reasons = sorted(b["options"]["failures"][0]["reason"] for b in bodies)
    assert reasons == ["feedback-accepted does not belong on router", "unknown lead l3"]
    assert len(calls) == 1


def test_one_process_holds_many_slow_messages_at_once_up_to_its_concurrency() -> None:
    with rabbit_vhost() as broker_url:
        # given a handler that holds each message until the test lets go, and a concurrency
        # of 50
        in_flight = 0
        peak = 0
        done: list[Message] = []
        released = threading.Event()

        async def handler(message: Message) -> None:
            nonlocal in_flight, peak
            in_flight += 1
            peak = max(peak, in_flight)
            while not released.is_set():
                await asyncio.sleep(0.01)
            in_flight -= 1
            done.append(message)

        with running(broker_url, "http_delivery", handler, concurrency=50):
            # when 120 messages arrive
            publish_messages(
                broker_url,
                *(
                    DeliverHttp(lead_id=f"l{i}", event_id=f"e{i}", recipient_id="r")
                    for i in range(120)
                ),
            )
            # then 50 are held at once, and no more come while they are
            wait_for(lambda: in_flight == 50, timeout=30, message="50 messages in hand")
            time.sleep(0.5)
            assert in_flight == 50
            # and once they go, the rest are handled too, never more than 50 at a time
            released.set()
            wait_for(lambda: len(done) == 120, timeout=30, message="every message handled")
        assert peak == 50
        assert queue_counts(broker_url)["http_delivery"] == (0, 0)


def test_a_stop_lets_the_message_in_hand_finish_and_ack_it() -> None:
    with rabbit_vhost() as broker_url:
        # given a message whose handler takes a second
        started = threading.Event()
        finished: list[Any] = []

        async def handler(message: Message) -> None:
            started.set()
            await asyncio.sleep(1.0)
            finished.append(message)

        with running(broker_url, "feedback", handler) as run:
            publish_messages(
                broker_url, FeedbackAccepted(lead_id="l5", event_id="e5", feedback_event_id="f")
            )
            assert started.wait(10)
            # when the worker is stopped while it is in hand
            run.stop()
        # then the handler finished, and nothing is left in the queue
        assert len(finished) == 1
        assert queue_counts(broker_url)["feedback"] == (0, 0)
