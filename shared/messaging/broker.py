"""The dramatiq broker, its retry-tier middleware, publishing and handler declaration.

Only this package imports dramatiq and pika. Services declare handlers with
``declare_handler`` (one actor per queue, named after the queue) and publish typed
messages through a ``Publisher``.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import dramatiq
import pika
import pika.exceptions
from dramatiq.brokers.rabbitmq import RabbitmqBroker
from dramatiq.middleware import Middleware

from shared.errors import MessageDecodeError, PermanentError, TransientError
from shared.messaging.messages import FlowReply, Message, decode_any
from shared.messaging.topology import (
    dead_queue_arguments,
    retry_queue_arguments,
    retry_queue_name,
    work_queue_arguments,
    xq_name,
)
from shared.metrics import DEAD_LETTERS, RETRIES

logger = logging.getLogger(__name__)

#: Delays (seconds) before re-running a message whose handler failed unexpectedly (a bug
#: or an outage the handler did not classify); then it is parked in the dead-letter queue.
UNEXPECTED_RETRY_SCHEDULE: tuple[float, ...] = (1.0, 5.0, 30.0)
#: Delays while a dependency the worker needs (the database) is unreachable, the last
#: repeated for as long as the outage lasts: an outage delays leads, never parks them.
OUTAGE_RETRY_SCHEDULE: tuple[float, ...] = (1, 2, 5, 10, 20, 30, 60, 60, 120, 300)
MAX_REASON_CHARS = 500
#: The failure history a message carries: the newest ones (``counts`` keeps the totals).
MAX_FAILURES_KEPT = 20
#: Failures of one persistent kind (an outage) before the message is parked after all:
#: with the outage schedule's 5-minute delay, more than three days.
PERSISTENT_LIMIT = 1000


@dataclass(frozen=True, slots=True)
class ParkedMessage:
    """What the database mirror records when a message is parked in ``<queue>.XQ``."""

    queue: str
    message_id: str
    payload: Any
    attempts: int
    failures: list[dict[str, Any]]
    body: str

    @property
    def last_reason(self) -> str | None:
        return self.failures[-1]["reason"] if self.failures else None


DeadLetterRecorder = Callable[[ParkedMessage], None]
ExhaustedHook = Callable[[Any, str], None]


class Publisher(Protocol):
    def publish(self, message: Message) -> None: ...

    def reply(self, reply_to: str, reply: FlowReply) -> None: ...


def reason_of(exception: BaseException) -> str:
    if isinstance(exception, TransientError):
        text = exception.reason
    else:
        text = str(exception) or type(exception).__name__
        if not isinstance(exception, PermanentError | MessageDecodeError):
            text = f"{type(exception).__name__}: {text}"
    return text[:MAX_REASON_CHARS]


def build_dramatiq_message(
    message: Message, options: dict[str, Any] | None = None
) -> dramatiq.Message[Any]:
    return dramatiq.Message(
        queue_name=message.QUEUE,
        actor_name=message.QUEUE,
        args=(message.to_dict(),),
        kwargs={},
        options=options or {},
    )


def failure_kind(exception: BaseException) -> str:
    """What a failure is counted as: each kind has its own count of attempts."""
    if isinstance(exception, PermanentError | MessageDecodeError):
        return "permanent"
    if isinstance(exception, TransientError):
        return exception.kind
    return "unexpected"


def next_retry_delay_ms(exception: BaseException, attempt: int) -> int | None:
    """The delay before the next attempt after the ``attempt``-th failure of this kind,
    or None to park the message.

    Transient failures follow their own schedule (a persistent one keeps its last delay
    once the schedule is used up); permanent ones and undecodable messages are parked at
    once; anything unexpected gets a few short retries.
    """
    schedule: Sequence[float]
    if isinstance(exception, PermanentError | MessageDecodeError):
        schedule = ()
    elif isinstance(exception, TransientError):
        schedule = exception.schedule
        if exception.persistent and schedule:
            attempt = min(attempt, len(schedule))
    else:
        schedule = UNEXPECTED_RETRY_SCHEDULE
    if attempt > len(schedule):
        return None
    return max(1, round(schedule[attempt - 1] * 1000))


@dataclass(frozen=True, slots=True)
class FailurePlan:
    """What happens to a message whose handler failed: retried after ``delay_ms`` through
    a retry tier, or parked (``delay_ms`` None) with its failure history (the newest
    ``MAX_FAILURES_KEPT``; ``counts`` has every failure by kind)."""

    attempt: int
    reason: str
    failures: list[dict[str, Any]]
    delay_ms: int | None
    counts: dict[str, int] = field(default_factory=dict)

    def retry_options(self) -> dict[str, Any]:
        """The options of the copy that goes to the retry tier."""
        return {"attempt": self.attempt + 1, "failures": self.failures, "counts": self.counts}


def plan_failure(options: dict[str, Any], exception: BaseException) -> FailurePlan:
    """The one retry policy, for the dramatiq middleware and the asyncio worker alike.

    Failures are counted by kind (``failure_kind``): each kind follows its own schedule.
    A persistent kind (an outage) is retried at its last delay, but not without end:
    after ``PERSISTENT_LIMIT`` failures of one kind the message is parked all the same.
    """
    attempt = int(options.get("attempt", 1))
    reason = reason_of(exception)
    kind = failure_kind(exception)
    earlier = list(options.get("failures", []))
    counts = dict(options.get("counts") or Counter(f.get("kind", "") for f in earlier))
    counts[kind] = nth = counts.get(kind, 0) + 1
    failures = [
        *earlier,
        {"attempt": attempt, "at": datetime.now(UTC).isoformat(), "reason": reason, "kind": kind},
    ][-MAX_FAILURES_KEPT:]
    delay = next_retry_delay_ms(exception, nth) if nth <= PERSISTENT_LIMIT else None
    return FailurePlan(attempt, reason, failures, delay, counts)


def outage_error(exc: BaseException) -> TransientError:
    """A dependency outage (the database went away) as a transient failure retried on
    OUTAGE_RETRY_SCHEDULE, named by its first line."""
    first = str(exc).splitlines()[0] if str(exc) else ""
    reason = f"{type(exc).__name__}: {first}"
    return TransientError(
        reason[:MAX_REASON_CHARS], OUTAGE_RETRY_SCHEDULE, kind="outage", persistent=True
    )


def note_retry(queue: str, plan: FailurePlan, payload: Any) -> None:
    RETRIES.labels(queue).inc()
    logger.info(
        "retry %d of %s in %d ms: %s",
        plan.attempt,
        queue,
        plan.delay_ms,
        plan.reason,
        extra=ids_of(payload),
    )


def note_parked(parked: ParkedMessage) -> None:
    DEAD_LETTERS.labels(parked.queue).inc()
    logger.warning(
        "parked %s in %s.XQ after %d attempts: %s",
        parked.message_id,
        parked.queue,
        parked.attempts,
        parked.last_reason,
        extra=ids_of(parked.payload),
    )


class TieredRetries(Middleware):
    """Retries through per-delay TTL queues instead of dramatiq's in-memory delay queue.

    A failed message is republished (with confirm) to ``<queue>.retry.<ms>`` carrying its
    attempt number and failure history in its options, then the original is acked. When
    the schedule is used up the actor's ``on_exhausted`` hook runs, the failure is mirrored
    in the database, and the message is failed so RabbitMQ parks it in ``<queue>.XQ``.
    """

    def __init__(
        self, record_dead_letter: DeadLetterRecorder | None = None, queue_type: str = "classic"
    ) -> None:
        self.record_dead_letter = record_dead_letter
        self.queue_type = queue_type
        self._declared: set[str] = set()
        self._lock = threading.Lock()

    @property
    def actor_options(self) -> set[str]:
        return {"on_exhausted", "throws"}

    def after_process_message(
        self,
        broker: dramatiq.Broker,
        message: Any,
        *,
        result: Any = None,
        exception: BaseException | None = None,
    ) -> None:
        if exception is None:
            return
        plan = plan_failure(message.options, exception)
        payload = message.args[0] if message.args else None
        if plan.delay_ms is not None:
            retry = message._message.copy(
                options=plan.retry_options()
            )
            if self._publish_retry(broker, message.queue_name, plan.delay_ms, retry):
                note_retry(message.queue_name, plan, payload)
                return
            plan.failures[-1]["reason"] += " (could not schedule the retry)"
        self._park(broker, message, payload, plan.attempt, plan.failures)

    def _park(
        self,
        broker: dramatiq.Broker,
        message: Any,
        payload: Any,
        attempt: int,
        failures: list[dict[str, Any]],
    ) -> None:
        reason = failures[-1]["reason"]
        actor = broker.actors.get(message.actor_name)
        hook: ExhaustedHook | None = actor.options.get("on_exhausted") if actor else None
        if hook is not None and payload is not None:
            try:
                hook(payload, reason)
            except Exception:
                logger.exception(
                    "on_exhausted hook of %s failed", message.queue_name, extra=ids_of(payload)
                )
        parked_copy = message._message.copy(options={"failures": failures})
        parked = ParkedMessage(
            queue=message.queue_name,
            message_id=message.message_id,
            payload=payload,
            attempts=attempt,
            failures=failures,
            body=parked_copy.encode().decode(),
        )
        if self.record_dead_letter is not None:
            try:
                self.record_dead_letter(parked)
            except Exception:
                logger.exception("could not mirror the dead letter %s", message.message_id)
        note_parked(parked)
        # The parked copy carries the whole history; the original is then acked. If the
        # copy cannot be published, failing the original parks it through the queue's
        # dead-letter arguments instead (with the history of the earlier attempts).
        if not self._publish(broker, xq_name(message.queue_name), parked_copy, declare=None):
            message.fail()

    def _publish_retry(self, broker: Any, queue: str, delay_ms: int, retry: Any) -> bool:
        tier = retry_queue_name(queue, delay_ms)
        return self._publish(
            broker, tier, retry, declare=retry_queue_arguments(queue, delay_ms, self.queue_type)
        )

    def _publish(
        self, broker: Any, queue: str, message: Any, declare: dict[str, Any] | None
    ) -> bool:
        """Publish with confirm (the broker's channel is in confirm mode); reconnect twice."""
        for attempt in range(3):
            try:
                channel = broker.channel
                if declare is not None and queue not in self._declared:
                    channel.queue_declare(queue=queue, durable=True, arguments=declare)
                    with self._lock:
                        self._declared.add(queue)
                channel.basic_publish(
                    exchange="",
                    routing_key=queue,
                    body=message.encode(),
                    properties=pika.BasicProperties(delivery_mode=2),
                    mandatory=True,
                )
                return True
            except (pika.exceptions.AMQPConnectionError, pika.exceptions.AMQPChannelError):
                logger.warning("publishing to %s failed (try %d), reconnecting", queue, attempt + 1)
                del broker.connection
                time.sleep(0.2 * (attempt + 1))
        return False


def ids_of(payload: Any) -> dict[str, Any]:
    if not isinstance(payload, dict):
        return {}
    return {k: payload[k] for k in ("lead_id", "event_id") if payload.get(k)}


@dataclass
class BrokerPublisher:
    """Publishes typed messages with publisher confirms (dramatiq's channel, one per thread)."""

    broker: RabbitmqBroker
    _reply_lock: threading.Lock = field(default_factory=threading.Lock)

    def publish(self, message: Message) -> None:
        self.broker.enqueue(build_dramatiq_message(message))

    def reply(self, reply_to: str, reply: FlowReply) -> None:
        # Replies are best effort: a transient, exclusive queue of one intake process.
        # If the intake is gone the reply is dropped and the lead's state is in the database.
        try:
            self.broker.channel.basic_publish(
                exchange="",
                routing_key=reply_to,
                body=json.dumps(reply.to_dict()).encode(),
                properties=pika.BasicProperties(delivery_mode=1, content_type="application/json"),
            )
        except (pika.exceptions.AMQPConnectionError, pika.exceptions.AMQPChannelError):
            logger.warning("reply to %s not sent", reply_to, extra={"lead_id": reply.lead_id})
            del self.broker.connection


def with_connection_defaults(url: str) -> str:
    """Heartbeats and a blocked-connection timeout unless the URL sets its own."""
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    query.setdefault("heartbeat", "30")
    query.setdefault("blocked_connection_timeout", "60")
    query.setdefault("connection_attempts", "3")
    query.setdefault("retry_delay", "1")
    return urlunsplit(parts._replace(query=urlencode(query)))


class LeadflowBroker(RabbitmqBroker):
    """dramatiq's RabbitMQ broker, declaring quorum queues when the cluster wants them, and
    knowing which exceptions mean an outage of a dependency (retried, never parked soon)."""

    def __init__(
        self,
        *,
        queue_type: str = "classic",
        outage_errors: tuple[type[BaseException], ...] = (),
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.queue_type = queue_type
        self.outage_errors = outage_errors

    def _build_queue_arguments(self, queue_name: str) -> dict[str, Any]:
        return work_queue_arguments(queue_name.removesuffix(".DQ"), self.queue_type)

    def _declare_xq_queue(self, queue_name: str) -> Any:
        return self.channel.queue_declare(
            queue=xq_name(queue_name), durable=True, arguments=dead_queue_arguments(self.queue_type)
        )


def make_broker(
    broker_url: str,
    *,
    record_dead_letter: DeadLetterRecorder | None = None,
    extra_middleware: Sequence[Middleware] = (),
    queue_type: str = "classic",
    outage_errors: tuple[type[BaseException], ...] = (),
) -> LeadflowBroker:
    """A confirming RabbitmqBroker without dramatiq's Retries (TieredRetries replaces it).

    Handlers failing with one of ``outage_errors`` (a database that went away) are retried
    on OUTAGE_RETRY_SCHEDULE."""
    middleware: list[Middleware] = [
        TieredRetries(record_dead_letter, queue_type),
        *extra_middleware,
    ]
    broker = LeadflowBroker(
        queue_type=queue_type,
        outage_errors=outage_errors,
        url=with_connection_defaults(broker_url),
        confirm_delivery=True,
        middleware=middleware,
    )
    dramatiq.set_broker(broker)
    return broker


def declare_handler(
    broker: RabbitmqBroker,
    queue: str,
    handler: Callable[[Message], None],
    *,
    on_exhausted: Callable[[Message, str], None] | None = None,
) -> None:
    """Bind ``handler`` as the one actor of ``queue``; every body is decoded to its typed message.

    Expected failures (transient, permanent, undecodable) are logged by the retry tiers
    without a traceback; anything else is logged once with its traceback by dramatiq.
    """

    outages = getattr(broker, "outage_errors", ())

    def actor_fn(payload: Any) -> None:
        message = decode_any(payload)
        if queue != message.QUEUE:
            raise MessageDecodeError(f"{message.KIND} does not belong on {queue}", payload)
        try:
            handler(message)
        except outages as exc:
            raise outage_error(exc) from exc

    def exhausted(payload: Any, reason: str) -> None:
        if on_exhausted is not None:
            on_exhausted(decode_any(payload), reason)

    actor_fn.__name__ = queue
    dramatiq.actor(
        actor_name=queue,
        queue_name=queue,
        broker=broker,
        throws=(TransientError, PermanentError, MessageDecodeError),
        on_exhausted=exhausted if on_exhausted is not None else None,
    )(actor_fn)
