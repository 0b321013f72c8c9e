"""Secrets (recipient passwords and API keys, source keys) reach the recipient and nowhere
else: not the logs, not the recorded attempts, not `leads show`."""

from __future__ import annotations

import base64
import json

import requests

from tests.e2e.conftest import Stack
from tests.support.recipient import Reply


def test_credentials_are_sent_but_never_logged_or_recorded(stack: Stack) -> None:
    secrets = [
        stack.env["SECRET_HEADER_VALUE"],
        stack.env["SECRET_PASSWORD_VALUE"],
        stack.env["SECRET_SOURCE_KEY"],
    ]
    basic = base64.b64encode(f"buyer:{stack.env['SECRET_PASSWORD_VALUE']}".encode()).decode()
    secrets.append(basic)
    echoed = f"X-Api-Key: {secrets[0]}, Authorization: Basic {basic}, password {secrets[1]}"
    # given a recipient failing once, then accepting, each time echoing the credentials
    stack.recipient.script(
        "/secret-buyer",
        [Reply(503, f"down; you sent {echoed}"), Reply(200, json.dumps({"echo": echoed}))],
    )

    # when a lead is posted with the source's key and delivered with the recipient's
    response = requests.post(
        f"{stack.intake_url}/flows/secrets/sources/keyed/submit",
        data={"x": "1"},
        auth=("API", stack.env["SECRET_SOURCE_KEY"]),
        timeout=10,
    )
    lead_id = response.json()["lead"]["id"]
    report = stack.wait_done(lead_id)

    # then the recipient got the credentials
    sent = [r for r in stack.recipient.requests("/secret-buyer") if lead_id in r.body.decode()]
    assert sent[0].headers["X-Api-Key"] == stack.env["SECRET_HEADER_VALUE"]
    assert "Authorization" in sent[0].headers
    # and no log line, recorded attempt or report carries any of them
    logs = stack.log_path.read_text()
    attempts = (
        stack.scalar(
            "SELECT string_agg(coalesce(error, '') || coalesce(excerpt, ''), ' ')"
            " FROM delivery_attempts WHERE event_id = :id",
            id=report["deliveries"][0]["event_id"],
        )
        if "postgresql" in stack.env["LEADFLOW_DATABASE_URL"]
        else stack.scalar(
            "SELECT group_concat(coalesce(error, '') || coalesce(excerpt, ''), ' ')"
            " FROM delivery_attempts WHERE event_id = :id",
            id=report["deliveries"][0]["event_id"],
        )
    )
    shown = stack.leadflow("leads", "show", lead_id).stdout
    for secret in secrets:
        assert secret not in logs
        assert secret not in (attempts or "")
        assert secret not in shown
    assert len(report["deliveries"][0]["attempts"]) == 2
