"""Queue names and arguments: the one place that knows how queues are declared.

Work queues use dramatiq's own arguments (dead-lettering to ``<queue>.XQ``). Each retry
delay gets its own tier ``<queue>.retry.<ms>``: a durable queue with no consumers whose
message TTL dead-letters back to the work queue, so nothing waits unacknowledged in a
worker while it waits for its next attempt.
"""

from __future__ import annotations

from typing import Any

from dramatiq.brokers.rabbitmq import DEAD_MESSAGE_TTL


def xq_name(queue: str) -> str:
    return f"{queue}.XQ"


def retry_queue_name(queue: str, delay_ms: int) -> str:
    return f"{queue}.retry.{delay_ms}"


def work_queue_arguments(queue: str) -> dict[str, Any]:
    # Must equal dramatiq's RabbitmqBroker._build_queue_arguments: queue arguments
    # cannot change once a queue exists.
    return {"x-dead-letter-exchange": "", "x-dead-letter-routing-key": xq_name(queue)}


def dead_queue_arguments() -> dict[str, Any]:
    return {"x-message-ttl": DEAD_MESSAGE_TTL}


def retry_queue_arguments(queue: str, delay_ms: int) -> dict[str, Any]:
    return {
        "x-message-ttl": delay_ms,
        "x-dead-letter-exchange": "",
        "x-dead-letter-routing-key": queue,
    }
