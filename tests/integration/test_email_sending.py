"""Email delivery on real infrastructure: the worker consuming a real RabbitMQ vhost with
its retry tiers, a real database, and messages read back from a Maildir or from a real
SMTP server (aiosmtpd on 127.0.0.1)."""

from __future__ import annotations

import asyncio
import logging
import mailbox
import ssl
import subprocess
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from sqlalchemy import select

from services.email_delivery import batches, worker
from services.email_delivery.mailer import MaildirMailer, Mailer, SmtpMailer, mailer_from_url
from shared.configstore import ConfigStore, apply_config
from shared.db.engine import (
    SessionFactory,
    transaction,
    utcnow,
)
from shared.db.models import Batch, DeadLetter, DeliveryAttempt, Event
from shared.deadletters import mirror_dead_letter
from shared.messaging import Consumer, DeliverEmail, ParkedMessage, ThreadPublisher, Worker
from tests.support.infra import free_port, rabbit_vhost, wait_for
from tests.support.workers import Running
from tests.unit.test_email_worker import attachment_rows, delivery_of, submit

CONFIG = """
recipients:
  mail_now:
    name: Mail Now
    email:
      to: [now@buyer.example]
      sender: leadflow@seller.example
      # quick first retries, then enough in all (~17 s) for a slow machine to start a server
      retry: {schedule: [200ms, 200ms, 200ms, 500ms, 1s, 2s, 3s, 5s, 5s]}
  mail_two:
    name: Mail Two
    email:
      to: [first@buyer.example, gone@buyer.example]
      retry: {schedule: [200ms]}
  mail_batch:
    name: Mail Batch
    email:
      to: [batch@buyer.example]
      mode: batch
      schedule: "0 8 * * *"
      file: {format: csv, quote: false}
      retry: {schedule: [200ms, 200ms]}
flows:
  now:
    name: Right now
    fields:
      first_name: {type: first_name}
      phone_1: {type: phone}
      email: {type: email}
    sources: {web: {}}
    steps: [{recipient: mail_now}]
  two:
    name: Two inboxes
    fields:
      phone_1: {type: phone}
    sources: {web: {}}
    steps: [{recipient: mail_two}]
  later:
    name: Later on
    fields:
      first_name: {type: first_name}
      phone_1: {type: phone}
    sources: {web: {}}
    steps: [{recipient: mail_batch}]
"""


@dataclass(frozen=True)
class Received:
    """How an accepted message came: to whom, over TLS or not, logged in as whom."""

    rcpt_tos: list[str]
    tls: bool
    login: str | None


@dataclass
class Inbox:
    """An aiosmtpd handler answering each DATA with the next scripted reply (the last one
    repeats), refusing the ``unknown`` addresses at RCPT, logging in ``user:password``,
    and keeping the messages it accepted."""

    replies: list[str] = field(default_factory=lambda: ["250 OK"])
    unknown: set[str] = field(default_factory=set)
    user: str = "leadflow"
    password: str = "s3cret"
    answered: list[str] = field(default_factory=list)
    accepted: list[EmailMessage] = field(default_factory=list)
    received: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        if address in self.unknown:
            return "550 5.1.1 no such user"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        with self.lock:
            reply = self.replies.pop(0) if len(self.replies) > 1 else self.replies[0]
            self.answered.append(reply)
            if reply.startswith("250"):
                parsed = message_from_bytes(envelope.content, policy=policy.default)
                self.accepted.append(parsed)
                tls = session.ssl is not None
                self.received.append(Received(list(envelope.rcpt_tos), tls, session.auth_data))
        return reply

    def authenticate(
        self, server: Any, session: Any, envelope: Any, mechanism: str, data: Any
    ) -> AuthResult:
        ok = isinstance(data, LoginPassword) and (data.login, data.password) == (
            self.user.encode(),
            self.password.encode(),
        )
        return AuthResult(success=ok, handled=False, auth_data=self.user if ok else None)


@dataclass
class Rig:
    sessions: SessionFactory
    configs: ConfigStore
    publisher: ThreadPublisher
    broker_url: str
    maildir: Path
    smtp_port: int
    inbox: Inbox
    controller: Controller | None = None

    def start_smtp(self, **options: Any) -> None:
        """Start the server; ``options`` go to aiosmtpd's SMTP (TLS, AUTH...)."""
        self.controller = Controller(
            self.inbox, hostname="127.0.0.1", port=self.smtp_port, **options
        )
        self.controller.start()

    def maildir_messages(self) -> list[EmailMessage]:
        if not (self.maildir / "cur").is_dir():
            return []  # the worker has not made the Maildir yet
        box = mailbox.Maildir(str(self.maildir), create=False)
        return [message_from_bytes(bytes(m), policy=policy.default) for m in box]


@pytest.fixture
def sessions(fresh_sessions: SessionFactory) -> SessionFactory:
    apply_config(fresh_sessions, CONFIG, {})
    return fresh_sessions


@pytest.fixture(scope="module")
def vhost() -> Iterator[str]:
    with rabbit_vhost() as url:
        yield url


def running(
    sessions: SessionFactory, broker_url: str, mailer: Mailer, rig_args: dict[str, Any]
) -> Iterator[Rig]:
    configs = ConfigStore(sessions, refresh_seconds=0)

    async def mirror(parked: ParkedMessage) -> None:
        with transaction(sessions) as session:
            mirror_dead_letter(session, parked)

    consumer = Worker(broker_url, record_dead_letter=mirror)
    publisher = ThreadPublisher(consumer, asyncio.new_event_loop())
    deps = worker.Deps(sessions, configs, publisher, mailer, patience=5.0)
    consumer.consume(Consumer.of(worker, deps, 2))
    run = Running(consumer, publisher.loop)
    run.start()
    rig = Rig(sessions, configs, publisher, broker_url, **rig_args)
    try:
        yield rig
    finally:
        run.stop()
        if rig.controller is not None:
            rig.controller.stop()


@pytest.fixture
def smtp_rig(sessions: SessionFactory, vhost: str, tmp_path: Path) -> Iterator[Rig]:
    port = free_port()
    mailer = SmtpMailer("127.0.0.1", port, timeout=5)
    args = {"maildir": tmp_path / "unused", "smtp_port": port, "inbox": Inbox()}
    yield from running(sessions, vhost, mailer, args)


@dataclass(frozen=True)
class Certificate:
    cert: Path
    key: Path


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> Certificate:
    """A self-signed certificate for 127.0.0.1, made by openssl for this test run."""
    folder = tmp_path_factory.mktemp("tls")
    made = Certificate(folder / "cert.pem", folder / "key.pem")
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
            "-keyout", str(made.key), "-out", str(made.cert),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )  # fmt: skip
    return made


def starttls_rig(
    sessions: SessionFactory, vhost: str, tmp_path: Path, password: str
) -> Iterator[Rig]:
    """The worker sending with ``smtp://leadflow:PASSWORD@...?starttls=true`` to a server
    that requires STARTTLS, then AUTH."""
    port = free_port()
    mailer = mailer_from_url(f"smtp://leadflow:{password}@127.0.0.1:{port}?starttls=true&timeout=5")
    args = {"maildir": tmp_path / "unused", "smtp_port": port, "inbox": Inbox()}
    yield from running(sessions, vhost, mailer, args)


@pytest.fixture
def trusting_starttls_rig(
    sessions: SessionFactory,
    vhost: str,
    tmp_path: Path,
    certificate: Certificate,
    monkeypatch: pytest.MonkeyPatch,
) -> Callable[[str], Iterator[Rig]]:
    """``starttls_rig`` for a password, its mailer trusting the test certificate as OpenSSL
    lets any client: SSL_CERT_FILE."""
    monkeypatch.setenv("SSL_CERT_FILE", str(certificate.cert))
    return partial(starttls_rig, sessions, vhost, tmp_path)


@pytest.fixture
def tls_rig(trusting_starttls_rig: Callable[[str], Iterator[Rig]]) -> Iterator[Rig]:
    yield from trusting_starttls_rig("s3cret")


@pytest.fixture
def wrong_password_rig(trusting_starttls_rig: Callable[[str], Iterator[Rig]]) -> Iterator[Rig]:
    yield from trusting_starttls_rig("not-the-password")


def start_tls_server(rig: Rig, certificate: Certificate) -> None:
    """STARTTLS with the test certificate required before anything, then AUTH."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(certificate.cert, certificate.key)
    rig.start_smtp(
        tls_context=context,
        require_starttls=True,
        auth_required=True,
        authenticator=rig.inbox.authenticate,
    )


@pytest.fixture
def maildir_rig(sessions: SessionFactory, vhost: str, tmp_path: Path) -> Iterator[Rig]:
    args = {"maildir": tmp_path / "mail", "smtp_port": 0, "inbox": Inbox()}
    yield from running(sessions, vhost, MaildirMailer(str(tmp_path / "mail")), args)


def send_lead(
    rig: Rig, flow_id: str = "now", recipient_id: str = "mail_now", **fields: str
) -> tuple[str, str]:
    lead_id = submit(rig.sessions, rig.configs, flow_id, **fields)
    event_id = delivery_of(rig.sessions, lead_id).event_id
    rig.publisher.publish(
        DeliverEmail(recipient_id=recipient_id, lead_id=lead_id, event_id=event_id)
    )
    return lead_id, event_id


def wait_status(rig: Rig, lead_id: str, status: str, timeout: float = 20) -> None:
    wait_for(
        lambda: delivery_of(rig.sessions, lead_id).status == status,
        timeout=timeout,
        message=f"lead {lead_id} to be {status}",
    )


def wait_delivered(rig: Rig, lead_ids: list[str], timeout: float = 20) -> None:
    wait_for(
        lambda: all(delivery_of(rig.sessions, i).status == "delivered" for i in lead_ids),
        timeout=timeout,
        message="leads delivered",
    )


def send_batch(rig: Rig, count: int) -> tuple[list[str], str]:
    lead_ids = [
        submit(rig.sessions, rig.configs, "later", first_name=f"Lead{n}", phone_1="5125551212")
        for n in range(count)
    ]
    claimed = batches.claim(rig.sessions, "mail_batch", utcnow())
    assert claimed is not None
    batches.publish(rig.sessions, rig.publisher, claimed)
    return lead_ids, claimed.batch_id


def attempts_of(rig: Rig, event_id: str) -> list[tuple[int | None, str | None]]:
    with rig.sessions() as session:
        found = session.scalars(
            select(DeliveryAttempt)
            .where(DeliveryAttempt.event_id == event_id)
            .order_by(DeliveryAttempt.number)
        )
        return [(a.status, a.error) for a in found]


# --- read back from a Maildir ----------------------------------------------------------------


def test_a_realtime_lead_is_written_to_the_maildir_as_a_one_row_attachment(
    maildir_rig: Rig,
) -> None:
    # when a lead for a real-time recipient is published
    lead_id, event_id = send_lead(maildir_rig, first_name="Ann", phone_1="5125551212")

    # then it is delivered, and the Maildir holds one message with the lead as a file
    wait_status(maildir_rig, lead_id, "delivered")
    (message,) = maildir_rig.maildir_messages()
    assert message["To"] == "now@buyer.example"
    assert message["X-Leadflow-Event-Id"] == event_id
    name, rows = attachment_rows(message)
    assert name.startswith("mail_now_now_") and name.endswith(".csv")
    assert rows == [["first_name", "phone_1", "email"], ["Ann", "5125551212", ""]]


def test_a_batch_is_written_to_the_maildir_as_one_message_with_every_lead(
    maildir_rig: Rig,
) -> None:
    lead_ids, batch_id = send_batch(maildir_rig, 3)

    wait_for(lambda: maildir_rig.maildir_messages(), timeout=20, message="the batch message")
    (message,) = maildir_rig.maildir_messages()
    assert message["X-Leadflow-Batch-Id"] == batch_id
    _, rows = attachment_rows(message)
    assert rows == [["first_name", "phone_1"]] + [[f"Lead{n}", "5125551212"] for n in range(3)]
    wait_delivered(maildir_rig, lead_ids, timeout=10)


# --- read back from a real SMTP server -------------------------------------------------------


def test_a_realtime_lead_sent_over_smtp_reaches_the_server(smtp_rig: Rig) -> None:
    # given a listening SMTP server
    smtp_rig.start_smtp()

    # when a lead is published
    lead_id, event_id = send_lead(smtp_rig, first_name="Bob", phone_1="5125551213")

    # then the server got one message with the lead, and the step completed with success
    wait_status(smtp_rig, lead_id, "delivered")
    (message,) = smtp_rig.inbox.accepted
    assert message["From"] == "leadflow@seller.example"
    assert message["Message-ID"] == f"<lead.{event_id}@seller.example>"
    _, rows = attachment_rows(message)
    assert rows[1] == ["Bob", "5125551213", ""]
    assert attempts_of(smtp_rig, event_id) == [(250, None)]
    with smtp_rig.sessions() as session:
        assert session.get(Event, event_id).outcome == "success"  # type: ignore[union-attr]


def test_a_batch_sent_over_smtp_reaches_the_server_and_its_leads_are_delivered(
    smtp_rig: Rig,
) -> None:
    smtp_rig.start_smtp()

    lead_ids, batch_id = send_batch(smtp_rig, 4)

    wait_delivered(smtp_rig, lead_ids)
    (message,) = smtp_rig.inbox.accepted
    assert message["Subject"].startswith("4 leads for Mail Batch from Later on")
    _, rows = attachment_rows(message)
    assert len(rows) == 5
    with smtp_rig.sessions() as session:
        batch = session.get(Batch, batch_id)
        assert batch is not None and (batch.state, batch.leads) == ("sent", 4)


def test_an_smtp_server_answering_451_then_250_gets_the_lead_after_the_retries(
    smtp_rig: Rig,
) -> None:
    # given a server that answers 451 twice, then accepts
    smtp_rig.inbox.replies = ["451 4.3.0 try later", "451 4.3.0 try later", "250 OK"]
    smtp_rig.start_smtp()

    # when a lead is published
    lead_id, event_id = send_lead(smtp_rig, phone_1="5125551214")

    # then it is delivered on the third attempt, each attempt recorded, sent once
    wait_status(smtp_rig, lead_id, "delivered")
    assert [status for status, _ in attempts_of(smtp_rig, event_id)] == [451, 451, 250]
    assert len(smtp_rig.inbox.accepted) == 1


def test_a_batch_whose_server_answers_451_first_is_sent_once_after_the_retry(
    smtp_rig: Rig,
) -> None:
    smtp_rig.inbox.replies = ["451 4.3.0 try later", "250 OK"]
    smtp_rig.start_smtp()

    lead_ids, batch_id = send_batch(smtp_rig, 2)

    wait_delivered(smtp_rig, lead_ids)
    assert smtp_rig.inbox.answered == ["451 4.3.0 try later", "250 OK"]
    with smtp_rig.sessions() as session:
        batch = session.get(Batch, batch_id)
        assert batch is not None and (batch.state, batch.attempts) == ("sent", 2)


def test_a_refused_connection_is_retried_until_the_server_is_up(smtp_rig: Rig) -> None:
    # given no SMTP server listening yet
    lead_id, event_id = send_lead(smtp_rig, phone_1="5125551215")
    wait_for(lambda: attempts_of(smtp_rig, event_id), timeout=20, message="a first attempt")
    assert delivery_of(smtp_rig.sessions, lead_id).status == "retrying"
    assert "Connection" in (attempts_of(smtp_rig, event_id)[0][1] or "")

    # when the server comes up
    smtp_rig.start_smtp()

    # then the lead is delivered by a later retry
    wait_status(smtp_rig, lead_id, "delivered")
    assert len(smtp_rig.inbox.accepted) == 1


def test_an_smtp_server_refusing_with_5xx_ends_the_step_in_error_and_parks_the_message(
    smtp_rig: Rig,
) -> None:
    # given a server that refuses the message for good
    smtp_rig.inbox.replies = ["554 5.7.1 rejected as spam"]
    smtp_rig.start_smtp()

    # when a lead is published
    lead_id, event_id = send_lead(smtp_rig, phone_1="5125551216")

    # then after one attempt the delivery and the step are errors
    wait_status(smtp_rig, lead_id, "error")
    delivery = delivery_of(smtp_rig.sessions, lead_id)
    assert delivery.dead_lettered is True
    assert attempts_of(smtp_rig, event_id) == [(554, "SMTP 554 5.7.1 rejected as spam")]
    with smtp_rig.sessions() as session:
        event = session.get(Event, event_id)
        assert event is not None
        assert (event.outcome, event.reason) == ("error", "SMTP 554 5.7.1 rejected as spam")

    # and the parked message is mirrored for operators
    def parked() -> DeadLetter | None:
        with smtp_rig.sessions() as session:
            return session.scalars(
                select(DeadLetter).where(DeadLetter.event_id == event_id)
            ).first()

    letter = wait_for(parked, timeout=10, message="the dead letter")
    assert letter.queue == "email_delivery"


def test_a_server_refusing_one_of_two_recipients_still_gets_the_lead_and_the_refusal_is_kept(
    smtp_rig: Rig, caplog: pytest.LogCaptureFixture
) -> None:
    # given a server that knows the first of the recipient's two addresses but not the second
    smtp_rig.inbox.unknown = {"gone@buyer.example"}
    smtp_rig.start_smtp()

    # when a lead is published
    with caplog.at_level(logging.WARNING, logger="services.email_delivery.worker"):
        lead_id, event_id = send_lead(smtp_rig, "two", "mail_two", phone_1="5125551217")
        wait_status(smtp_rig, lead_id, "delivered")

    # then the message reached the address the server accepted, and the lead is delivered
    (received,) = smtp_rig.inbox.received
    assert received.rcpt_tos == ["first@buyer.example"]
    # and the refused address is on the attempt, and in a warning naming the lead
    refusal = "Recipients refused: gone@buyer.example: 550 5.1.1 no such user"
    assert attempts_of(smtp_rig, event_id) == [(250, refusal)]
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert [(r.getMessage(), r.lead_id, r.event_id) for r in warnings] == [  # type: ignore[attr-defined]
        (f"email to mail_two delivered, but {refusal}", lead_id, event_id)
    ]


def test_a_lead_is_sent_over_starttls_after_logging_in(
    tls_rig: Rig, certificate: Certificate
) -> None:
    # given a server that requires STARTTLS with a certificate the mailer trusts, then AUTH
    start_tls_server(tls_rig, certificate)

    # when a lead is published
    lead_id, event_id = send_lead(tls_rig, first_name="Tia", phone_1="5125551218")

    # then the server got it over TLS from the logged-in user, and the lead is delivered
    wait_status(tls_rig, lead_id, "delivered")
    (received,) = tls_rig.inbox.received
    assert received == Received(["now@buyer.example"], tls=True, login="leadflow")
    _, rows = attachment_rows(tls_rig.inbox.accepted[0])
    assert rows[1] == ["Tia", "5125551218", ""]
    assert attempts_of(tls_rig, event_id) == [(250, None)]


def test_a_wrong_smtp_password_is_a_permanent_error(
    wrong_password_rig: Rig, certificate: Certificate
) -> None:
    # given a server that requires STARTTLS and AUTH, and a mailer with a wrong password
    start_tls_server(wrong_password_rig, certificate)

    # when a lead is published
    lead_id, event_id = send_lead(wrong_password_rig, phone_1="5125551219")

    # then the 535 gives up at once: one attempt, the delivery in error, nothing received
    wait_status(wrong_password_rig, lead_id, "error")
    ((code, error),) = attempts_of(wrong_password_rig, event_id)
    assert code == 535 and error is not None and error.startswith("SMTP 535")
    assert delivery_of(wrong_password_rig.sessions, lead_id).dead_lettered is True
    assert wrong_password_rig.inbox.received == []
