"""A recipient outside its hours with ``when_closed: hold`` (SPEC section 13), through a
stack of its own whose clock (``LEADFLOW_CLOCK_OFFSET_SECONDS``) stands a few seconds
before Monday 09:00 in New York: the step waits in the router's delay tiers (its event
``pending``, the lead ``queued``) and is delivered at the opening."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from shared.db.migrate import upgrade
from tests.e2e.conftest import Stack, start_stack
from tests.support.infra import fresh_database, own_stack_env, rabbit_vhost, wait_for
from tests.support.processes import stop_process
from tests.support.recipient import Recipient

#: How long after the stack starts its recipient opens (its start takes a few seconds).
OPENS_AFTER_SECONDS = 15.0
OPENING = datetime(2026, 12, 7, 9, 0, tzinfo=ZoneInfo("America/New_York"))
CONFIG = """
recipients:
  office_hours:
    timezone: America/New_York
    schedule: {mon-fri: ["09:00-17:00"]}
    when_closed: hold
    http:
      url: ${RECIPIENT}/office-hours
      fields: {lead_id: "{{lead.id}}"}
flows:
  held:
    response: {mode: on_receipt}
    sources: {web: {}}
    steps: [{recipient: office_hours}]
"""


@pytest.fixture
def held_stack(
    stack_env: dict[str, str], recipient: Recipient, tmp_path: Path
) -> Iterator[tuple[Stack, float]]:
    """(a stack whose clock opens the recipient in OPENS_AFTER_SECONDS, that moment on
    this machine's monotonic clock)."""
    opens_at = time.monotonic() + OPENS_AFTER_SECONDS
    offset = (OPENING - datetime.now(UTC)).total_seconds() - OPENS_AFTER_SECONDS
    with rabbit_vhost() as broker_url, fresh_database(str(tmp_path)) as database_url:
        upgrade(database_url)
        env = {
            **stack_env,
            **own_stack_env(broker_url, database_url),
            "LEADFLOW_METRICS_PORT": "0",
            "LEADFLOW_CLOCK_OFFSET_SECONDS": str(offset),
        }
        config = tmp_path / "config.yaml"
        config.write_text(CONFIG)
        process, stack = start_stack(env, recipient, config, tmp_path / "leadflow-up.log")
        try:
            yield stack, opens_at
        finally:
            stop_process(process, timeout=60)


def test_a_held_step_waits_in_a_delay_queue_and_is_delivered_at_the_opening(
    held_stack: tuple[Stack, float],
) -> None:
    stack, opens_at = held_stack
    # given a recipient that opens at 09:00 New York time, a few seconds from now
    assert time.monotonic() < opens_at - 3, "the stack took too long to start"

    # when a lead comes before the opening
    answer = stack.submit("held").json()
    lead_id = answer["lead"]["id"]

    # then its step waits: the event is pending, the lead queued, nothing is sent
    def held() -> dict[str, Any] | None:
        steps = [e for e in stack.show(lead_id)["events"] if e["type"] == "recipient"]
        return steps[0] if steps and steps[0]["outcome"] == "pending" else None

    pending = wait_for(held, timeout=10, message="the step held")
    assert pending["reason"] == "Outside hours of operation"
    assert stack.show(lead_id)["lead"]["outcome"] == "queued"
    assert stack.recipient.requests("/office-hours") == []
    time.sleep(max(0.0, opens_at - 1.5 - time.monotonic()))
    assert stack.recipient.requests("/office-hours") == [], "sent before the opening"

    # and at the opening it is delivered, as the same step event
    wait_for(lambda: stack.recipient.requests("/office-hours"), timeout=20, message="the delivery")
    assert time.monotonic() >= opens_at - 0.5
    done = stack.wait_done(lead_id)
    (step,) = [e for e in done["events"] if e["type"] == "recipient"]
    assert (step["outcome"], step["id"]) == ("success", pending["id"])
    assert json.loads(stack.recipient.requests("/office-hours")[0].body)["lead_id"] == lead_id
