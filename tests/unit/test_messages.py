"""Typed messages: encode, decode, and one error for every bad body."""

from __future__ import annotations

from typing import Any

import pytest

from shared.errors import MessageDecodeError
from shared.messaging.messages import (
    DeliverEmail,
    DeliverHttp,
    FlowReply,
    LeadSubmitted,
    Message,
    StepCompleted,
    decode_any,
)


@pytest.mark.parametrize(
    "message",
    [
        LeadSubmitted(lead_id="a" * 24),
        StepCompleted(lead_id="a" * 24, event_id="b" * 24),
        DeliverHttp(lead_id="a" * 24, event_id="b" * 24, recipient_id="acme"),
        DeliverEmail(recipient_id="buyer", batch_id="c" * 24),
    ],
)
def test_a_message_survives_encode_and_decode_unchanged(message: Message) -> None:
    assert decode_any(message.to_dict()) == message


def test_a_message_names_its_kind_and_version() -> None:
    assert LeadSubmitted(lead_id="x").to_dict() == {
        "kind": "lead-submitted",
        "v": 1,
        "lead_id": "x",
    }


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        (None, "unknown message kind"),
        ("text", "unknown message kind"),
        ({"kind": "nope", "v": 1}, "unknown message kind"),
        ({"kind": "lead-submitted", "v": 2, "lead_id": "x"}, "unsupported version"),
        ({"kind": "lead-submitted", "v": 1}, "missing 'lead_id'"),
        ({"kind": "lead-submitted", "v": 1, "lead_id": 5}, "lead_id must be a string"),
    ],
)
def test_every_bad_body_is_one_decode_error_that_keeps_the_raw_body(raw: Any, why: str) -> None:
    with pytest.raises(MessageDecodeError, match=why) as caught:
        decode_any(raw)
    assert caught.value.raw == raw


def test_messages_are_frozen() -> None:
    message = LeadSubmitted(lead_id="x")
    with pytest.raises(AttributeError):
        message.lead_id = "y"  # type: ignore[misc]


def test_a_flow_reply_reads_its_price_as_a_number() -> None:
    reply = FlowReply.decode({"lead_id": "x", "outcome": "success", "reason": None, "price": "2.5"})
    assert reply.price == 2.5
