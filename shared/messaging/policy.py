"""The one failure policy of every consumer: what a failed message becomes.

Failures are sorted by kind (``failure_kind``): transient ones follow their own retry
schedule through the retry tiers (a persistent kind, an outage, keeps its last delay),
permanent ones and undecodable messages are parked at once, anything unexpected (a bug)
gets a few short retries. ``plan_failure`` turns a message's options and the exception
into a ``FailurePlan``: retry after ``delay_ms``, or park with the failure history.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from shared.errors import MessageDecodeError, PermanentError, TransientError
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


def reason_of(exception: BaseException) -> str:
    if isinstance(exception, TransientError):
        text = exception.reason
    else:
        text = str(exception) or type(exception).__name__
        if not isinstance(exception, PermanentError | MessageDecodeError):
            text = f"{type(exception).__name__}: {text}"
    return text[:MAX_REASON_CHARS]


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


def ids_of(payload: Any) -> dict[str, Any]:
    if not isinstance(payload, dict):
        return {}
    return {k: payload[k] for k in ("lead_id", "event_id") if payload.get(k)}
