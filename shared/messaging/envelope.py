"""The body every leadflow message travels in on RabbitMQ.

A JSON object: ``message_id`` (kept by every retry and replay of the message),
``queue_name``, ``args`` (one item: the typed message as a dict), ``options`` (the
attempt number and failure history the retry tiers add) and ``message_timestamp`` (ms).
The shape is dramatiq's, so messages parked or mirrored by earlier versions still read.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import Any

import orjson

from shared.errors import MessageDecodeError
from shared.ids import new_id
from shared.messaging.messages import Message
from shared.messaging.topology import delay_tier, retry_queue_name


@dataclass(frozen=True, slots=True)
class Envelope:
    queue: str
    payload: Any
    options: dict[str, Any] = field(default_factory=dict)
    message_id: str = field(default_factory=new_id)
    timestamp: int = field(default_factory=lambda: int(time.time() * 1000))
    #: Where it is published: its queue, or the delay tier it waits in first.
    route: str = ""

    @classmethod
    def of(cls, message: Message) -> Envelope:
        tier = delay_tier(message.delay_ms())
        route = retry_queue_name(message.QUEUE, tier) if tier else message.QUEUE
        return cls(queue=message.QUEUE, payload=message.to_dict(), route=route)

    def encode(self) -> bytes:
        return orjson.dumps(
            {
                "queue_name": self.queue,
                "actor_name": self.queue,
                "args": [self.payload],
                "kwargs": {},
                "options": self.options,
                "message_id": self.message_id,
                "message_timestamp": self.timestamp,
            }
        )

    @classmethod
    def decode(cls, body: bytes | str) -> Envelope:
        """The envelope of a raw body; anything unreadable is one ``MessageDecodeError``."""
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise MessageDecodeError(f"body is not JSON: {exc}", body) from None
        if not isinstance(data, dict):
            raise MessageDecodeError("body is not a JSON object", body)
        args = data.get("args")
        options = data.get("options") or {}
        message_id = data.get("message_id")
        if not isinstance(args, list) or len(args) != 1 or not isinstance(options, dict):
            raise MessageDecodeError("body has no message in args", body)
        if not isinstance(message_id, str) or not message_id:
            raise MessageDecodeError("body has no message_id", body)
        timestamp = data.get("message_timestamp")
        return cls(
            queue=str(data.get("queue_name") or ""),
            payload=args[0],
            options=options,
            message_id=message_id,
            timestamp=timestamp if isinstance(timestamp, int) else 0,
        )

    def with_options(self, options: dict[str, Any]) -> Envelope:
        return replace(self, options=options)
