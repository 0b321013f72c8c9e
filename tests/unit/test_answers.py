"""Answers stay well-formed in every format, whatever a reason quoted from a client holds."""

from __future__ import annotations

import json

import pytest
from defusedxml import ElementTree

from shared.answers import JSON, TEXT, XML, render

REASON = "bad\x01x\r\nline2: z\x0bq"
ANSWER = {"outcome": "failure", "reason": REASON, "lead": {"id": "a1"}, "price": 0.0}


def test_an_xml_answer_drops_characters_xml_cannot_carry() -> None:
    body, content_type = render(ANSWER, XML)
    root = ElementTree.fromstring(body)
    assert content_type.startswith("text/xml")
    assert root.findtext("reason") == "badx\r\nline2: zq"
    assert root.findtext("price") == "0"


def test_a_text_answer_keeps_one_line_per_key_when_a_reason_holds_line_breaks() -> None:
    body, _ = render(ANSWER, TEXT)
    lines = body.decode().splitlines()
    assert lines == ["outcome: failure", "reason: bad\x01x line2: z q", "lead.id: a1", "price: 0"]


@pytest.mark.parametrize(("price", "shown"), [(0.0, 0), (12.0, 12), (12.5, 12.5)])
def test_a_json_answer_writes_whole_prices_as_integers(price: float, shown: float) -> None:
    body, _ = render({**ANSWER, "price": price}, JSON)
    decoded = json.loads(body)
    assert decoded["reason"] == REASON
    assert decoded["price"] == shown and type(decoded["price"]) is type(shown)
