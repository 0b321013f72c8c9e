"""Email delivery through the real processes started by `leadflow up`, messages read back
from the stack's Maildir: real-time leads, batches every second, `batches send|list`."""

from __future__ import annotations

import csv
import io
import mailbox
import os
import secrets
from email import message_from_bytes, policy
from email.message import EmailMessage
from urllib.parse import urlsplit

import pytest

from tests.e2e.conftest import Stack
from tests.support.infra import wait_for


def maildir_messages(stack: Stack, recipient: str) -> list[EmailMessage]:
    parts = urlsplit(stack.env["LEADFLOW_EMAIL_URL"])
    path = parts.netloc + parts.path
    if not os.path.isdir(os.path.join(path, "cur")):
        return []  # no email worker has made the Maildir yet
    box = mailbox.Maildir(path, create=False)
    messages = [message_from_bytes(bytes(m), policy=policy.default) for m in box]
    return [m for m in messages if m["X-Leadflow-Recipient"] == recipient]


def attachment(message: EmailMessage) -> tuple[str, list[dict[str, str]]]:
    part = next(iter(message.iter_attachments()))
    name = part.get_filename() or ""
    text = part.get_content()
    delimiter = "\t" if name.endswith(".tsv") else ","
    return name, list(csv.DictReader(io.StringIO(text, newline=""), delimiter=delimiter))


def refs_in(stack: Stack, recipient: str) -> list[str]:
    return [row["ref"] for m in maildir_messages(stack, recipient) for row in attachment(m)[1]]


def submit(stack: Stack, flow: str, ref: str, **fields: str) -> str:
    response = stack.submit(flow, data={"ref": ref, "phone_1": "5125551212", **fields})
    assert response.status_code == 201, response.text
    return str(response.json()["lead"]["id"])


def delivery_status(stack: Stack, lead_id: str) -> str:
    return str(stack.scalar("SELECT status FROM deliveries WHERE lead_id = :id", id=lead_id))


def wait_mailed(stack: Stack, recipient: str, refs: list[str]) -> None:
    """Wait until the lead of every ref of ``refs`` is in a file mailed to ``recipient``."""
    wait_for(
        lambda: set(refs) <= set(refs_in(stack, recipient)),
        timeout=30,
        message=f"every lead mailed to {recipient}",
    )


def wait_statuses(stack: Stack, lead_ids: list[str], status: str, timeout: float) -> None:
    """Wait until the delivery of every lead of ``lead_ids`` has ``status``."""
    wait_for(
        lambda: all(delivery_status(stack, i) == status for i in lead_ids),
        timeout=timeout,
        message=f"leads {status}",
    )


@pytest.fixture(scope="module")
def scheduler_running(stack: Stack) -> None:
    """Wait until a batch went out: the email workers and their scheduler are up (and the
    scheduler's first pass, which catches up every recipient's latest slot, is over)."""
    ref = f"warmup-{secrets.token_hex(4)}"
    submit(stack, "email_every", ref)
    wait_for(lambda: ref in refs_in(stack, "mail_every"), timeout=60, message="a first batch")


def test_a_lead_for_a_realtime_email_recipient_is_mailed_before_the_flow_finishes(
    stack: Stack,
) -> None:
    # given a flow whose one step is a real-time email recipient (after_flow answers)
    ref = secrets.token_hex(6)

    # when a source posts a lead
    response = stack.submit(
        "email_realtime", data={"ref": ref, "first_name": "Ann", "phone_1": "(512) 555-1212"}
    )

    # then the answer comes after the email step succeeded
    assert response.status_code == 201
    assert response.json()["outcome"] == "success"
    lead_id = response.json()["lead"]["id"]
    # and the Maildir holds one message for the lead with a one-row file of every field
    (message,) = [
        m for m in maildir_messages(stack, "mail_realtime") if m["X-Leadflow-Lead-Id"] == lead_id
    ]
    assert message["To"] == "realtime@buyer.example"
    assert "Realtime Mail Buyer" in message["Subject"]
    assert "Realtime email flow" in message["Subject"]
    name, rows = attachment(message)
    assert name.startswith("mail_realtime_email_realtime_") and name.endswith(".csv")
    assert rows == [{"ref": ref, "first_name": "Ann", "phone_1": "5125551212", "email": ""}]
    # and the lead's report shows the delivery delivered and the step's success
    report = stack.show(lead_id)
    assert report["deliveries"][0]["status"] == "delivered"
    step = next(e for e in report["events"] if e["type"] == "recipient")
    assert step["outcome"] == "success"
    assert message["X-Leadflow-Event-Id"] == step["id"]


def test_leads_for_a_batch_recipient_go_out_in_batches_each_lead_exactly_once(
    stack: Stack, scheduler_running: None
) -> None:
    # given a recipient batched every second
    refs = [secrets.token_hex(6) for _ in range(5)]

    # when five leads arrive
    lead_ids = [submit(stack, "email_every", ref) for ref in refs]

    # then each reaches the Maildir in one batch file, once, and is delivered
    wait_mailed(stack, "mail_every", refs)
    mailed = refs_in(stack, "mail_every")
    assert all(mailed.count(ref) == 1 for ref in refs)
    wait_statuses(stack, lead_ids, "delivered", timeout=10)
    # and the batches are listed as sent
    listing = stack.leadflow("batches", "list", "--recipient", "mail_every").stdout
    assert " sent " in listing


def test_batches_send_mails_a_held_recipients_pending_leads_now(
    stack: Stack, scheduler_running: None
) -> None:
    # given leads waiting for a recipient whose batches are due once a year
    refs = [secrets.token_hex(6) for _ in range(2)]
    lead_ids = [submit(stack, "email_held", ref) for ref in refs]
    wait_statuses(stack, lead_ids, "pending", timeout=20)

    # when an operator sends the pending leads now
    sent = stack.leadflow("batches", "send", "--recipient", "mail_held")

    # then a batch of both leads is queued and mailed as one message
    assert "2 leads queued for mail_held" in sent.stdout
    batch_id = sent.stdout.split()[1].rstrip(":")
    wait_mailed(stack, "mail_held", refs)
    (message,) = [
        m for m in maildir_messages(stack, "mail_held") if m["X-Leadflow-Batch-Id"] == batch_id
    ]
    assert message["Subject"].startswith("2 leads for Held Mail Buyer from Held email flow")
    wait_statuses(stack, lead_ids, "delivered", timeout=10)
    # and the batch is listed as sent with its two leads
    listing = stack.leadflow("batches", "list", "--recipient", "mail_held").stdout
    line = next(line for line in listing.splitlines() if line.startswith(batch_id))
    assert line.split()[1:3] == ["mail_held", "send"]
    assert "      2 sent " in line
    # and sending again finds nothing pending
    again = stack.leadflow("batches", "send", "--recipient", "mail_held")
    assert "0 leads pending" in again.stdout


def test_batches_send_refuses_a_recipient_that_is_not_an_email_recipient(stack: Stack) -> None:
    result = stack.leadflow("batches", "send", "--recipient", "manual_desk", check=False)

    assert result.returncode != 0
    assert "not an email recipient" in result.stderr
