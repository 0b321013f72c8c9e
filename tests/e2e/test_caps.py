"""Caps, schedules and pausing (SPEC section 13) through the real intake, router and
http-delivery processes: a cap is never exceeded however many workers deliver, a rejected
lead gives its slot back, a full flow or source cap fails the lead at intake, and paused
or closed recipients are skipped with their reasons."""

from __future__ import annotations

import json
import sys
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any

from tests.e2e.conftest import Stack
from tests.support.infra import wait_for
from tests.support.processes import start_process, stop_process
from tests.support.recipient import Reply


def caps_listed(stack: Stack) -> list[dict[str, Any]]:
    return json.loads(stack.leadflow("caps", "--json").stdout)


def ready(log: Path) -> bool:
    return "ready for action" in log.read_text()


def recipient_step(report: dict[str, Any], recipient_id: str) -> dict[str, Any]:
    (event,) = [e for e in report["events"] if e["recipient"] == recipient_id]
    return event


def test_500_leads_at_once_against_a_cap_of_50_with_four_http_delivery_processes_sell_50(
    stack: Stack, tmp_path: Path
) -> None:
    # given a buyer capped at 50 a day, a second buyer after it, and four http-delivery
    # processes (the stack's and three more)
    extra = [
        start_process(
            [sys.executable, "-m", "services.cli", "http-delivery"],
            {**stack.env, "LEADFLOW_METRICS_PORT": "0"},
            tmp_path / f"http-delivery-{n}.log",
        )
        for n in range(3)
    ]
    try:
        for n in range(3):
            log = tmp_path / f"http-delivery-{n}.log"
            wait_for(partial(ready, log), timeout=30, message=f"http-delivery {n} ready")

        # when 500 leads are submitted at once
        with ThreadPoolExecutor(32) as pool:
            answers = list(pool.map(lambda _: stack.submit("capped").json(), range(500)))
        ids = [a["lead"]["id"] for a in answers]
        wait_for(
            lambda: (
                stack.scalar(
                    "SELECT count(*) FROM leads WHERE flow_id = 'capped' AND state = 'done'"
                )
                == 500
            ),
            timeout=120,
            interval=0.5,
            message="500 leads done",
        )
        assert len(set(ids)) == 500
    finally:
        for process in extra:
            stop_process(process)

    # then exactly 50 were sent to the capped buyer, the 450 others skipped it with
    # reason "Cap reached" and went to the next buyer
    assert len({r.json()["lead_id"] for r in stack.recipient.requests("/cap-buyer")}) == 50
    delivered = stack.scalar(
        "SELECT count(*) FROM deliveries WHERE recipient_id = 'cap_buyer' AND status = 'delivered'"
    )
    assert delivered == 50
    skipped = stack.scalar(
        "SELECT count(*) FROM events WHERE recipient_id = 'cap_buyer' AND outcome = 'skip' "
        "AND reason = 'Cap reached'"
    )
    assert skipped == 450
    assert len(stack.recipient.requests("/cap-backup")) >= 450
    # and `leadflow caps` shows the cap used up, resetting at New York's next midnight
    (cap,) = [c for c in caps_listed(stack) if c["owner"] == "cap_buyer"]
    assert (cap["window"], cap["used"], cap["max"]) == ("day", 50, 50)
    assert cap["resets_at"].endswith(("+00:00", "Z"))
    text = stack.leadflow("caps").stdout
    assert "recipient cap_buyer" in text and "50" in text


def test_60_leads_at_once_to_a_buyer_at_10_a_lead_capped_at_100_of_revenue_sell_10(
    stack: Stack,
) -> None:
    # given a buyer paid 10.00 a lead with a revenue cap of 100.00 a day
    # when 60 leads are submitted at once
    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(lambda _: stack.submit("revenue_capped").json(), range(60)))
    for answer in answers:
        stack.wait_done(answer["lead"]["id"])

    # then it bought 10 (the leads in flight counted their 10.00 as they were sent) and
    # the 50 others skipped it as capped; its cap shows the 100.00 reached
    assert len(stack.recipient.requests("/revenue-capped")) == 10
    skipped = stack.scalar(
        "SELECT count(*) FROM events WHERE recipient_id = 'revenue_capped' AND reason = :r",
        r="Cap reached",
    )
    assert skipped == 50
    (cap,) = [c for c in caps_listed(stack) if c["owner"] == "revenue_capped"]
    assert cap["used"] == cap["max"] == "100.00"


def test_a_rejected_lead_gives_its_slot_back_and_a_rule_set_cap_counts_only_its_leads(
    stack: Stack,
) -> None:
    # given a buyer capped at 2 in total (and 1 a month from Texas) that rejects the first
    # lead it is sent and accepts the rest
    stack.recipient.script("/picky-capped", [Reply(200, "rejected"), Reply(200, "accepted")])

    # when five leads come one after another: TX, TX, CA, CA, CA
    outcomes = []
    for state in ("TX", "TX", "CA", "CA", "CA"):
        lead_id = stack.submit("capped_picky", data={"state": state}).json()["lead"]["id"]
        report = stack.wait_done(lead_id)
        step = recipient_step(report, "picky_capped")
        outcomes.append((step["outcome"], step["reason"]))

    # then the rejected first TX lead gave its slot back; the second TX took the Texas
    # slot; the first CA took the last total slot; the others found the cap full
    assert outcomes[0][0] == "failure"
    assert outcomes[1][0] == "success"
    assert outcomes[2][0] == "success"
    assert outcomes[3:] == [("skip", "Cap reached"), ("skip", "Cap reached")]
    assert len(stack.recipient.requests("/picky-capped")) == 3


def test_a_full_flow_or_source_cap_fails_the_lead_at_intake(stack: Stack) -> None:
    # given a flow capped at 3 a day and its source "small" capped at 1 in total
    # when the small source sends two leads and the web source three more
    small = [stack.submit("capped_intake", "small").json() for _ in range(2)]
    web = [stack.submit("capped_intake", "web").json() for _ in range(3)]

    # then the small source's second lead and the flow's fourth fail with "Cap reached",
    # and nothing of theirs is routed
    assert [a["outcome"] for a in small] == ["success", "failure"]
    assert small[1]["reason"] == "Cap reached"
    assert [a["outcome"] for a in web] == ["success", "success", "failure"]
    assert web[2]["reason"] == "Cap reached"
    refused = stack.show(web[2]["lead"]["id"])
    assert [e["type"] for e in refused["events"]] == ["source"]
    listed = {(c["owner_type"], c["owner"]): c for c in caps_listed(stack)}
    assert listed[("flow", "capped_intake")]["used"] == 3
    assert listed[("source", "capped_intake/small")]["used"] == 1
    assert listed[("source", "capped_intake/small")]["resets_at"] is None


def test_a_paused_recipient_is_skipped_until_it_is_resumed(stack: Stack) -> None:
    # given a paused recipient
    paused = stack.leadflow("recipients", "pause", "pausable")
    assert "pausable paused" in paused.stdout
    listed = json.loads(stack.leadflow("recipients", "list", "--json").stdout)
    assert {"id": "pausable", "paused": True}.items() <= next(
        r for r in listed if r["id"] == "pausable"
    ).items()
    try:
        # when a lead comes
        first = stack.wait_done(stack.submit("paused_flow").json()["lead"]["id"])
    finally:
        stack.leadflow("recipients", "resume", "pausable")

    # then it skipped the recipient with reason "Paused" (and the closed one after it
    # with "Outside hours of operation"); once resumed, the next lead is sent
    step = recipient_step(first, "pausable")
    assert (step["outcome"], step["reason"]) == ("skip", "Paused")
    closed = recipient_step(first, "never_open")
    assert (closed["outcome"], closed["reason"]) == ("skip", "Outside hours of operation")
    second = stack.wait_done(stack.submit("paused_flow").json()["lead"]["id"])
    assert recipient_step(second, "pausable")["outcome"] == "success"
    unknown = stack.leadflow("recipients", "pause", "nobody", check=False)
    assert unknown.returncode != 0 and "unknown recipient 'nobody'" in unknown.stderr


def test_a_flow_outside_its_hours_fails_submissions_with_leadconduits_reason(
    stack: Stack,
) -> None:
    answer = stack.submit("closed_flow").json()
    assert answer["outcome"] == "failure"
    assert answer["reason"] == "Submission Timestamp must be within hours of operation"
