"""Every message leadflow sends, typed, frozen and versioned: ids and small values only.

Each message type names its work queue; the queue's single actor has the same name.
``decode`` turns any bad body into one ``MessageDecodeError`` that keeps the raw body.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, ClassVar, TypeVar

from shared import clock
from shared.errors import MessageDecodeError

ROUTER = "router"
HTTP_DELIVERY = "http_delivery"
EMAIL_DELIVERY = "email_delivery"
FEEDBACK = "feedback"
M = TypeVar("M", bound="Message")


@dataclass(frozen=True, slots=True)
class Message:
    QUEUE: ClassVar[str]
    KIND: ClassVar[str]
    VERSION: ClassVar[int] = 1

    def delay_ms(self) -> float:
        """How long the message waits before its queue takes it (a delay tier's wait)."""
        return 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.KIND, "v": self.VERSION, **dataclasses.asdict(self)}

    @classmethod
    def decode(cls: type[M], raw: Any) -> M:
        if not isinstance(raw, dict):
            raise MessageDecodeError(f"{cls.KIND}: body is not an object", raw)
        if raw.get("kind") != cls.KIND:
            raise MessageDecodeError(f"{cls.KIND}: unexpected kind {raw.get('kind')!r}", raw)
        if raw.get("v") != cls.VERSION:
            raise MessageDecodeError(f"{cls.KIND}: unsupported version {raw.get('v')!r}", raw)
        values: dict[str, Any] = {}
        for field in dataclasses.fields(cls):
            if field.name in raw:
                values[field.name] = raw[field.name]
            elif field.default is dataclasses.MISSING:
                raise MessageDecodeError(f"{cls.KIND}: missing {field.name!r}", raw)
        for name, value in values.items():
            if name.endswith("_id") and value is not None and not isinstance(value, str):
                raise MessageDecodeError(f"{cls.KIND}: {name} must be a string", raw)
        return cls(**values)


@dataclass(frozen=True, slots=True)
class LeadSubmitted(Message):
    """Intake stored a lead that goes into its flow."""

    QUEUE: ClassVar[str] = ROUTER
    KIND: ClassVar[str] = "lead-submitted"
    lead_id: str


@dataclass(frozen=True, slots=True)
class StepCompleted(Message):
    """A delivery worker recorded the outcome of a recipient step; the flow may go on."""

    QUEUE: ClassVar[str] = ROUTER
    KIND: ClassVar[str] = "step-completed"
    lead_id: str
    event_id: str


@dataclass(frozen=True, slots=True)
class StepDue(Message):
    """A recipient step held while its recipient is closed (``when_closed: hold``) is due
    at ``due_at`` (ISO 8601, UTC): it waits in the router's delay tiers until then."""

    QUEUE: ClassVar[str] = ROUTER
    KIND: ClassVar[str] = "step-due"
    lead_id: str
    event_id: str
    due_at: str

    def due(self) -> datetime:
        try:
            return datetime.fromisoformat(self.due_at)
        except (TypeError, ValueError):
            return datetime.min.replace(tzinfo=UTC)  # unreadable: due at once

    def delay_ms(self) -> float:
        return (self.due() - clock.now()).total_seconds() * 1000


@dataclass(frozen=True, slots=True)
class DeliverHttp(Message):
    """Send a lead to a recipient over HTTP (the step's event id keys the delivery)."""

    QUEUE: ClassVar[str] = HTTP_DELIVERY
    KIND: ClassVar[str] = "deliver-http"
    lead_id: str
    event_id: str
    recipient_id: str


@dataclass(frozen=True, slots=True)
class RunAuction(Message):
    """Ask the bidders of a lead's auction step for their bids (the step's event id);
    the bids are stored and the step reported to the router (``StepCompleted``)."""

    QUEUE: ClassVar[str] = HTTP_DELIVERY
    KIND: ClassVar[str] = "run-auction"
    lead_id: str
    event_id: str


@dataclass(frozen=True, slots=True)
class DeliverEmail(Message):
    """Send one lead, or one batch of leads, to an email recipient."""

    QUEUE: ClassVar[str] = EMAIL_DELIVERY
    KIND: ClassVar[str] = "deliver-email"
    recipient_id: str
    lead_id: str | None = None
    event_id: str | None = None
    batch_id: str | None = None


@dataclass(frozen=True, slots=True)
class FeedbackAccepted(Message):
    """A recipient's return or conversion was accepted; forward it to the lead's source."""

    QUEUE: ClassVar[str] = FEEDBACK
    KIND: ClassVar[str] = "feedback-accepted"
    lead_id: str
    event_id: str
    feedback_event_id: str


@dataclass(frozen=True, slots=True)
class FlowReply:
    """The router's answer to the intake process waiting on a lead (after_flow mode)."""

    lead_id: str
    outcome: str
    reason: str | None
    price: Decimal  # carried as a string: money never passes through float

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "price": str(self.price)}

    def encode(self) -> bytes:
        return json.dumps(self.to_dict()).encode()

    @classmethod
    def decode(cls, raw: Any) -> FlowReply:
        try:
            return cls(
                lead_id=str(raw["lead_id"]),
                outcome=str(raw["outcome"]),
                reason=raw.get("reason"),
                price=Decimal(str(raw.get("price") or 0)),
            )
        except (KeyError, TypeError, ValueError, AttributeError, InvalidOperation) as exc:
            raise MessageDecodeError(f"flow-reply: {exc}", raw) from None


MESSAGE_TYPES: dict[str, type[Message]] = {
    t.KIND: t
    for t in (
        LeadSubmitted,
        StepCompleted,
        StepDue,
        DeliverHttp,
        RunAuction,
        DeliverEmail,
        FeedbackAccepted,
    )
}


def decode_any(raw: Any) -> Message:
    kind = raw.get("kind") if isinstance(raw, dict) else None
    message_type = MESSAGE_TYPES.get(kind) if isinstance(kind, str) else None
    if message_type is None:
        raise MessageDecodeError(f"unknown message kind {kind!r}", raw)
    return message_type.decode(raw)
