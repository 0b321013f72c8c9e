"""Queue names and arguments: the one place that knows how queues are declared.

Work queues use dramatiq's own arguments (dead-lettering to ``<queue>.XQ``). Each retry
delay gets its own tier ``<queue>.retry.<ms>``: a durable queue with no consumers whose
message TTL dead-letters back to the work queue, so nothing waits unacknowledged in a
worker while it waits for its next attempt.
"""

from __future__ import annotations

from typing import Any

#: How long a parked message stays in ``<queue>.XQ`` (7 days; the database mirror stays).
DEAD_MESSAGE_TTL = 86_400_000 * 7


def xq_name(queue: str) -> str:
    return f"{queue}.XQ"


def retry_queue_name(queue: str, delay_ms: int) -> str:
    return f"{queue}.retry.{delay_ms}"


#: The tiers a message due later (``Message.delay_ms``) waits in, largest first: one due
#: in three hours waits three times in the hour's tier, then in shorter ones, and comes
#: to its queue at most a tenth of a second late.
DELAY_TIERS_MS = (3_600_000, 600_000, 60_000, 10_000, 1_000, 100)
#: Due this close (ms) is due now.
DUE_WITHIN_MS = 50


def delay_tier(remaining_ms: float) -> int:
    """The tier a message due in ``remaining_ms`` waits in next; 0 when it is due now."""
    if remaining_ms <= DUE_WITHIN_MS:
        return 0
    return next((t for t in DELAY_TIERS_MS if t <= remaining_ms), DELAY_TIERS_MS[-1])


def tier_of(name: str) -> tuple[str, int] | None:
    """(work queue, delay) of a retry tier's name; None for any other queue."""
    queue, sep, delay = name.rpartition(".retry.")
    return (queue, int(delay)) if sep and delay.isdigit() else None


def _typed(arguments: dict[str, Any], queue_type: str) -> dict[str, Any]:
    # Quorum queues (replicated, for clusters) are chosen at declaration; classic queues
    # are declared without the argument, exactly as dramatiq declares them.
    if queue_type == "quorum":
        return {**arguments, "x-queue-type": "quorum"}
    return arguments


def work_queue_arguments(queue: str, queue_type: str = "classic") -> dict[str, Any]:
    # Must equal what LeadflowBroker declares (dramatiq's arguments plus the queue type):
    # queue arguments cannot change once a queue exists.
    return _typed(
        {"x-dead-letter-exchange": "", "x-dead-letter-routing-key": xq_name(queue)}, queue_type
    )


def dead_queue_arguments(queue_type: str = "classic") -> dict[str, Any]:
    return _typed({"x-message-ttl": DEAD_MESSAGE_TTL}, queue_type)


def retry_queue_arguments(queue: str, delay_ms: int, queue_type: str = "classic") -> dict[str, Any]:
    return _typed(
        {
            "x-message-ttl": delay_ms,
            "x-dead-letter-exchange": "",
            "x-dead-letter-routing-key": queue,
        },
        queue_type,
    )
