"""The email worker's handler with fakes: a recording mailer, a recording publisher, and
leads routed by the real router code into a throwaway SQLite database."""

from __future__ import annotations

import csv
import io
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from email.message import EmailMessage
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select, update

from services.email_delivery import batches, records, worker
from services.email_delivery.mailer import Accepted, SendFailed
from services.email_delivery.schedule import Scheduler
from shared.configstore import ConfigStore, apply_config
from shared.db.engine import (
    SessionFactory,
    as_utc,
    make_engine,
    make_session_factory,
    transaction,
    utcnow,
)
from shared.db.models import Base, Batch, Delivery, DeliveryAttempt, Event, Lead
from shared.errors import PermanentError, TransientError
from shared.messaging import DeliverEmail, Message, StepCompleted
from tests.support.routing import submit

CONFIG = """
recipients:
  now_buyer:
    name: Now Buyer
    email:
      to: [leads@now.example]
      retry: {schedule: [200ms, 1s]}
  batch_buyer:
    name: Batch Buyer
    email:
      to: [leads@batch.example]
      cc: [boss@batch.example]
      mode: batch
      every: 1h
      timezone: America/Chicago
      file: {format: tsv, quote: false}
      retry: {schedule: [200ms]}
  once_batch:
    name: Once Batch
    duplicates: {keys: [[phone_1]], lookback: 1d}
    email: {to: [leads@once.example], mode: batch, every: 1h}
  capped_batch:
    name: Capped Batch
    price: 4.00
    caps: [{max: 1, per: day}, {max_revenue: 100, per: day}]
    email: {to: [leads@capped.example], mode: batch, every: 1h}
  twice_daily:
    name: Twice Daily
    email:
      to: [leads@twice.example]
      mode: batch
      schedule: "0 8,15 * * *"
      timezone: America/Chicago
flows:
  auto:
    name: Auto insurance
    fields:
      first_name: {type: first_name}
      phone_1: {type: phone, required: true}
      email: {type: email}
      comments: {type: string}
    sources: {web: {name: Web}}
    steps:
      - recipient: now_buyer
  later:
    name: Later
    fields:
      first_name: {type: first_name}
      phone_1: {type: phone}
    sources: {web: {name: Web}}
    steps:
      - recipient: batch_buyer
  later_once:
    name: Later once
    fields:
      phone_1: {type: phone}
    sources: {web: {name: Web}}
    steps:
      - recipient: once_batch
  later_capped:
    name: Later capped
    fields:
      phone_1: {type: phone}
    sources: {web: {name: Web}}
    steps:
      - recipient: capped_batch
  daily:
    name: Daily
    fields:
      phone_1: {type: phone}
    sources: {web: {name: Web}}
    steps:
      - recipient: twice_daily
"""


@dataclass
class FakeMailer:
    """Accepts messages, or raises the scripted failures first."""

    failures: list[SendFailed] = field(default_factory=list)
    sent: list[EmailMessage] = field(default_factory=list)
    refused: str | None = None  # what the server says it refused while accepting

    def send(self, message: EmailMessage) -> Accepted:
        if self.failures:
            raise self.failures.pop(0)
        self.sent.append(message)
        return Accepted(250, "fake", self.refused)


@dataclass
class FakePublisher:
    published: list[Message] = field(default_factory=list)

    def publish(self, message: Message) -> None:
        self.published.append(message)


def sqlite_sessions(path: str) -> SessionFactory:
    engine = make_engine(f"sqlite:///{path}")
    Base.metadata.create_all(engine)
    return make_session_factory(engine)


def pending_since(sessions: SessionFactory, lead_id: str, at: datetime) -> None:
    """Date the lead's delivery as routed at ``at`` (the tests' scheduler clock is not now)."""
    with transaction(sessions) as session:
        session.execute(update(Delivery).where(Delivery.lead_id == lead_id).values(created_at=at))


def delivery_of(sessions: SessionFactory, lead_id: str) -> Delivery:
    with sessions() as session:
        found = session.scalars(select(Delivery).where(Delivery.lead_id == lead_id)).one()
        session.expunge(found)
        return found


def attachment_rows(message: EmailMessage) -> tuple[str, list[list[str]]]:
    part = next(iter(message.iter_attachments()))
    text = part.get_content()
    if isinstance(text, bytes):
        text = text.decode()
    name = part.get_filename() or ""
    delimiter = "\t" if name.endswith(".tsv") else ","
    return name, list(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter))


@dataclass
class World:
    sessions: SessionFactory
    configs: ConfigStore
    mailer: FakeMailer
    publisher: FakePublisher
    deps: worker.Deps


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    sessions = sqlite_sessions(str(tmp_path / "leadflow.db"))
    apply_config(sessions, CONFIG, {})
    configs = ConfigStore(sessions, refresh_seconds=0)
    mailer, publisher = FakeMailer(), FakePublisher()
    deps = worker.Deps(sessions, configs, publisher, mailer, patience=1.0)
    yield World(sessions, configs, mailer, publisher, deps)


def realtime_message(world: World, lead_id: str) -> DeliverEmail:
    delivery = delivery_of(world.sessions, lead_id)
    return DeliverEmail(recipient_id="now_buyer", lead_id=lead_id, event_id=delivery.event_id)


# --- real time -------------------------------------------------------------------------------


def test_a_realtime_lead_is_emailed_as_a_one_row_file_then_delivered_and_the_flow_goes_on(
    world: World,
) -> None:
    # given a lead routed to a real-time email recipient
    lead_id = submit(world.sessions, world.configs, "auto", first_name="Ann", phone_1="5125551212")
    message = realtime_message(world, lead_id)

    # when the worker handles its message
    worker.handle(message, world.deps)

    # then one email went out with the lead as a one-row CSV under every flow field
    (email,) = world.mailer.sent
    assert email["To"] == "leads@now.example"
    assert "Now Buyer" in email["Subject"] and "Auto insurance" in email["Subject"]
    assert email["X-Leadflow-Event-Id"] == message.event_id
    name, rows = attachment_rows(email)
    assert name.startswith("now_buyer_auto_") and name.endswith(".csv")
    assert rows == [["first_name", "phone_1", "email", "comments"], ["Ann", "5125551212", "", ""]]
    # and the delivery is delivered, the step a success, and the router is told
    delivery = delivery_of(world.sessions, lead_id)
    assert delivery.status == "delivered"
    assert delivery.attempts == 1
    with world.sessions() as session:
        assert session.get(Event, message.event_id).outcome == "success"  # type: ignore[union-attr]
    assert world.publisher.published == [StepCompleted(lead_id=lead_id, event_id=message.event_id)]  # type: ignore[arg-type]


def test_a_redelivered_message_for_a_delivered_lead_is_not_emailed_again(world: World) -> None:
    # given a lead already emailed
    lead_id = submit(world.sessions, world.configs, "auto", phone_1="5125551212")
    message = realtime_message(world, lead_id)
    worker.handle(message, world.deps)

    # when the same message comes again
    worker.handle(message, world.deps)

    # then nothing more is sent, and the step result is published again (harmless)
    assert len(world.mailer.sent) == 1
    assert len(world.publisher.published) == 2
    assert delivery_of(world.sessions, lead_id).attempts == 1


def test_a_second_copy_of_a_message_being_emailed_waits_instead_of_mailing_again(
    world: World,
) -> None:
    # given a lead whose email another worker is sending right now (its claim is held)
    lead_id = submit(world.sessions, world.configs, "auto", phone_1="5125551212")
    message = realtime_message(world, lead_id)
    with transaction(world.sessions) as session:
        records.claim(session, world.configs, message, holder="another-worker", margin=1.0)

    # when RabbitMQ hands a second copy of the message to this worker
    with pytest.raises(TransientError, match="another worker is delivering this lead") as caught:
        worker.handle(message, world.deps)

    # then nothing is sent, and the copy waits without using up the recipient's retries
    assert world.mailer.sent == []
    assert (caught.value.kind, caught.value.persistent) == ("busy", True)
    assert delivery_of(world.sessions, lead_id).status == "sending"


def test_a_claim_whose_worker_died_lapses_and_the_next_copy_sends_the_lead(world: World) -> None:
    # given a claim taken longer ago than the lease
    lead_id = submit(world.sessions, world.configs, "auto", phone_1="5125551212")
    message = realtime_message(world, lead_id)
    with transaction(world.sessions) as session:
        records.claim(session, world.configs, message, holder="dead-worker", margin=1.0)
        delivery = session.get(Delivery, message.event_id)
        assert delivery is not None
        delivery.updated_at = utcnow() - timedelta(hours=1)

    # when the message comes again, then the lead is emailed once and delivered
    worker.handle(message, world.deps)
    assert len(world.mailer.sent) == 1
    assert delivery_of(world.sessions, lead_id).status == "delivered"


def test_a_lead_that_could_not_be_written_gives_its_claim_back_for_the_retry(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given a lead whose file cannot be written (an unexpected failure before sending)
    lead_id = submit(world.sessions, world.configs, "auto", phone_1="5125551212")

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("disk full")

    monkeypatch.setattr("services.email_delivery.worker.compose.letter", broken)

    # when the worker handles it, then the failure is raised for a retry
    with pytest.raises(RuntimeError):
        worker.handle(realtime_message(world, lead_id), world.deps)

    # and the delivery is not left claimed, so the retry does not wait out the lease
    assert world.mailer.sent == []
    assert delivery_of(world.sessions, lead_id).status == "retrying"


def test_a_4xx_answer_is_retried_with_the_recipients_schedule(world: World) -> None:
    # given a server answering 451
    world.mailer.failures = [SendFailed("SMTP 451 try later", transient=True, code=451)]
    lead_id = submit(world.sessions, world.configs, "auto", phone_1="5125551212")

    # when the worker handles the lead, then it asks for a retry on the recipient's schedule
    with pytest.raises(TransientError) as caught:
        worker.handle(realtime_message(world, lead_id), world.deps)
    assert caught.value.schedule == (0.2, 1.0)
    # and the attempt is recorded, the lead waits as retrying, the flow is not told yet
    delivery = delivery_of(world.sessions, lead_id)
    assert delivery.status == "retrying"
    with world.sessions() as session:
        attempt = session.scalars(select(DeliveryAttempt)).one()
    assert (attempt.status, attempt.error) == (451, "SMTP 451 try later")
    assert world.publisher.published == []


def test_a_5xx_answer_gives_up_and_the_step_ends_in_error_with_the_flow_going_on(
    world: World,
) -> None:
    # given a server refusing the message for good
    world.mailer.failures = [SendFailed("SMTP 550 no such user", transient=False, code=550)]
    lead_id = submit(world.sessions, world.configs, "auto", phone_1="5125551212")
    message = realtime_message(world, lead_id)

    # when the worker handles it, then the message is to be parked at once
    with pytest.raises(PermanentError):
        worker.handle(message, world.deps)
    # and when the messaging layer calls the exhausted hook
    worker.on_exhausted(message, "SMTP 550 no such user", world.deps)

    # then the delivery and the step are errors and the flow goes on
    delivery = delivery_of(world.sessions, lead_id)
    assert (delivery.status, delivery.dead_lettered) == ("error", True)
    with world.sessions() as session:
        event = session.get(Event, message.event_id)
        assert event is not None
        assert (event.outcome, event.reason) == ("error", "SMTP 550 no such user")
    assert world.publisher.published == [StepCompleted(lead_id=lead_id, event_id=message.event_id)]  # type: ignore[arg-type]


# --- batches ---------------------------------------------------------------------------------


def test_a_batch_is_one_email_with_every_pending_lead_and_they_become_delivered(
    world: World,
) -> None:
    # given three leads pending for a batch recipient (their flow did not wait)
    lead_ids = [
        submit(world.sessions, world.configs, "later", first_name=name, phone_1="5125551212")
        for name in ("Ann", "Bob", "Cy")
    ]
    assert {delivery_of(world.sessions, i).status for i in lead_ids} == {"pending"}

    # when the slot is claimed and its message handled
    claimed = batches.claim(world.sessions, "batch_buyer", utcnow())
    assert claimed is not None and claimed.leads == 3
    worker.handle(DeliverEmail(recipient_id="batch_buyer", batch_id=claimed.batch_id), world.deps)

    # then one email carries the three leads in the recipient's format (tsv, unquoted)
    (email,) = world.mailer.sent
    assert email["Cc"] == "boss@batch.example"
    assert email["Subject"].startswith("3 leads for Batch Buyer from Later")
    name, rows = attachment_rows(email)
    assert name.startswith("batch_buyer_later_") and name.endswith(".tsv")
    assert rows == [
        ["first_name", "phone_1"],
        ["Ann", "5125551212"],
        ["Bob", "5125551212"],
        ["Cy", "5125551212"],
    ]
    # and the leads are delivered, the batch sent, and the router is not involved
    assert {delivery_of(world.sessions, i).status for i in lead_ids} == {"delivered"}
    with world.sessions() as session:
        batch = session.get(Batch, claimed.batch_id)
        assert batch is not None and batch.state == "sent" and batch.sent_at is not None
    assert world.publisher.published == []


def test_a_slot_with_nothing_pending_stores_and_sends_nothing(world: World) -> None:
    # given no pending lead, when the slot is claimed
    claimed = batches.claim(world.sessions, "batch_buyer", utcnow())

    # then there is no batch
    assert claimed is None
    with world.sessions() as session:
        assert session.scalar(select(func.count()).select_from(Batch)) == 0


def test_a_slot_is_claimed_once_and_a_lead_joins_only_one_batch(world: World) -> None:
    # given a pending lead and a claimed slot
    submit(world.sessions, world.configs, "later", phone_1="5125551212")
    due = utcnow()
    first = batches.claim(world.sessions, "batch_buyer", due)

    # when the same slot is claimed again, or another slot right after
    again = batches.claim(world.sessions, "batch_buyer", due)
    other = batches.claim(world.sessions, "batch_buyer", utcnow())

    # then only the first claim took anything
    assert first is not None and first.leads == 1
    assert again is None
    assert other is None


def test_a_batch_already_sent_is_not_sent_again(world: World) -> None:
    submit(world.sessions, world.configs, "later", phone_1="5125551212")
    claimed = batches.claim(world.sessions, "batch_buyer", utcnow())
    assert claimed is not None
    message = DeliverEmail(recipient_id="batch_buyer", batch_id=claimed.batch_id)
    worker.handle(message, world.deps)

    worker.handle(message, world.deps)

    assert len(world.mailer.sent) == 1


def test_a_batch_failing_for_good_ends_in_error_with_its_leads(world: World) -> None:
    # given a batch whose server refuses it
    lead_id = submit(world.sessions, world.configs, "later", phone_1="5125551212")
    claimed = batches.claim(world.sessions, "batch_buyer", utcnow())
    assert claimed is not None
    world.mailer.failures = [SendFailed("SMTP 552 too big", transient=False, code=552)]
    message = DeliverEmail(recipient_id="batch_buyer", batch_id=claimed.batch_id)

    # when it is handled and given up
    with pytest.raises(PermanentError):
        worker.handle(message, world.deps)
    worker.on_exhausted(message, "SMTP 552 too big", world.deps)

    # then the batch and its lead are errors
    with world.sessions() as session:
        batch = session.get(Batch, claimed.batch_id)
        assert batch is not None
        assert (batch.state, batch.reason) == ("error", "SMTP 552 too big")
    delivery = delivery_of(world.sessions, lead_id)
    assert (delivery.status, delivery.dead_lettered) == ("error", True)


def test_a_batch_given_up_lets_its_recipient_take_a_matching_lead_again(world: World) -> None:
    # given a recipient holding a lead's duplicate key while its batch is pending
    first = submit(world.sessions, world.configs, "later_once", phone_1="5125551212")
    held = submit(world.sessions, world.configs, "later_once", phone_1="5125551212")
    assert delivery_count(world.sessions, held) == 0  # skipped: the first one holds the key
    claimed = batches.claim(world.sessions, "once_batch", utcnow())
    assert claimed is not None
    message = DeliverEmail(recipient_id="once_batch", batch_id=claimed.batch_id)

    # when its batch is given up
    worker.on_exhausted(message, "SMTP 552 too big", world.deps)

    # then the recipient no longer holds the key: a matching lead is queued for it
    assert delivery_of(world.sessions, first).status == "error"
    again = submit(world.sessions, world.configs, "later_once", phone_1="5125551212")
    assert delivery_of(world.sessions, again).status == "pending"


def counters_of(sessions: SessionFactory, recipient_id: str) -> list[tuple[int, Decimal]]:
    """(used, revenue) of each of the recipient's cap counters, by key."""
    table = Base.metadata.tables["cap_counters"]
    with sessions() as session:
        rows = session.execute(
            select(table.c.used, table.c.revenue)
            .where(table.c.cap_key.contains(recipient_id))
            .order_by(table.c.cap_key)
        )
        return [(used, Decimal(revenue)) for used, revenue in rows]


def test_a_batch_given_up_gives_back_the_cap_slots_and_revenue_its_leads_kept(
    world: World,
) -> None:
    # given a recipient taking one lead a day, whose lead waits in a batch, and a second
    # lead skipped because the cap is full
    first = submit(world.sessions, world.configs, "later_capped", phone_1="5125551212")
    skipped = submit(world.sessions, world.configs, "later_capped", phone_1="5125551213")
    assert delivery_count(world.sessions, skipped) == 0
    assert counters_of(world.sessions, "capped_batch") == [(1, Decimal(4)), (1, Decimal(4))]
    claimed = batches.claim(world.sessions, "capped_batch", utcnow())
    assert claimed is not None

    # when its batch is given up
    message = DeliverEmail(recipient_id="capped_batch", batch_id=claimed.batch_id)
    worker.on_exhausted(message, "SMTP 552 too big", world.deps)

    # then the slot and the revenue are given back: the next lead is taken; the step is an
    # error at no price, and the lead no longer counts the sale
    assert delivery_of(world.sessions, first).status == "error"
    assert counters_of(world.sessions, "capped_batch") == [(0, Decimal(0)), (0, Decimal(0))]
    with world.sessions() as session:
        lead = session.get(Lead, first)
        step = session.scalars(
            select(Event).where(Event.lead_id == first, Event.type == "recipient")
        ).one()
    assert lead is not None and lead.price == Decimal(0)
    assert (step.outcome, step.price) == ("error", Decimal(0))
    again = submit(world.sessions, world.configs, "later_capped", phone_1="5125551214")
    assert delivery_of(world.sessions, again).status == "pending"


def delivery_count(sessions: SessionFactory, lead_id: str) -> int:
    with sessions() as session:
        return (
            session.scalar(
                select(func.count()).select_from(Delivery).where(Delivery.lead_id == lead_id)
            )
            or 0
        )


def test_a_batch_the_server_took_for_some_recipients_is_sent_and_keeps_the_refusal(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    # given a batch, and a server that takes it for the To address but refuses the Cc
    lead_id = submit(world.sessions, world.configs, "later", phone_1="5125551212")
    claimed = batches.claim(world.sessions, "batch_buyer", utcnow())
    assert claimed is not None
    refusal = "Recipients refused: boss@batch.example: 550 5.1.1 no such user"
    world.mailer.refused = refusal

    # when the batch is handled
    with caplog.at_level(logging.WARNING, logger="services.email_delivery.worker"):
        worker.handle(
            DeliverEmail(recipient_id="batch_buyer", batch_id=claimed.batch_id), world.deps
        )

    # then the batch is sent and its lead delivered, with the refusal as the batch's reason
    assert delivery_of(world.sessions, lead_id).status == "delivered"
    with world.sessions() as session:
        batch = session.get(Batch, claimed.batch_id)
        assert batch is not None and (batch.state, batch.reason) == ("sent", refusal)
    # and a warning names the batch and the refused address
    assert [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING] == [
        f"batch {claimed.batch_id} to batch_buyer delivered, but {refusal}"
    ]


def test_a_second_copy_of_a_batch_being_sent_waits_for_the_first(world: World) -> None:
    # given a batch whose sending lease another worker holds
    submit(world.sessions, world.configs, "later", phone_1="5125551212")
    claimed = batches.claim(world.sessions, "batch_buyer", utcnow())
    assert claimed is not None
    assert batches.begin_send(world.sessions, world.configs, claimed.batch_id) is not None

    # when a second copy of its message is handled, then it is retried later, unsent
    with pytest.raises(TransientError, match="being sent by another worker"):
        worker.handle(
            DeliverEmail(recipient_id="batch_buyer", batch_id=claimed.batch_id), world.deps
        )
    assert world.mailer.sent == []


def test_a_batch_failing_for_a_while_gives_its_lease_back_for_the_retry(world: World) -> None:
    submit(world.sessions, world.configs, "later", phone_1="5125551212")
    claimed = batches.claim(world.sessions, "batch_buyer", utcnow())
    assert claimed is not None
    world.mailer.failures = [SendFailed("SMTP: ConnectionRefusedError", transient=True)]
    message = DeliverEmail(recipient_id="batch_buyer", batch_id=claimed.batch_id)

    with pytest.raises(TransientError):
        worker.handle(message, world.deps)
    worker.handle(message, world.deps)

    assert len(world.mailer.sent) == 1
    with world.sessions() as session:
        batch = session.get(Batch, claimed.batch_id)
        assert batch is not None and (batch.state, batch.attempts) == ("sent", 2)


# --- the scheduler ---------------------------------------------------------------------------


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def test_the_scheduler_claims_a_batch_at_each_due_time_and_publishes_it(world: World) -> None:
    # given an hourly recipient with a lead pending since 15:50 and one since 16:10,
    # and a scheduler started at 16:30 (it missed the 16:00 slot)
    before_slot = submit(world.sessions, world.configs, "later", phone_1="5125551212")
    pending_since(world.sessions, before_slot, datetime(2026, 11, 24, 15, 50, tzinfo=UTC))
    after_slot = submit(world.sessions, world.configs, "later", phone_1="5125551213")
    pending_since(world.sessions, after_slot, datetime(2026, 11, 24, 16, 10, tzinfo=UTC))
    clock = Clock(datetime(2026, 11, 24, 16, 30, tzinfo=UTC))
    scheduler = Scheduler(world.sessions, world.configs, world.publisher, clock=clock)

    # when it first looks, it catches up the 16:00 slot with the lead that waited by then
    wait = scheduler.tick()
    (message,) = world.publisher.published
    assert isinstance(message, DeliverEmail) and message.batch_id is not None
    assert delivery_of(world.sessions, before_slot).batch_id == message.batch_id
    assert delivery_of(world.sessions, after_slot).batch_id is None
    assert wait == pytest.approx(30 * 60, abs=1)

    # when a third lead arrives and time passes, but not to the next slot
    third = submit(world.sessions, world.configs, "later", phone_1="5125551214")
    pending_since(world.sessions, third, datetime(2026, 11, 24, 16, 45, tzinfo=UTC))
    clock.now = datetime(2026, 11, 24, 16, 59, 59, tzinfo=UTC)
    scheduler.tick()
    # then nothing more is published
    assert len(world.publisher.published) == 1

    # when the next slot comes, the two later leads go in a second batch
    clock.now = datetime(2026, 11, 24, 17, 0, 0, 1000, tzinfo=UTC)
    scheduler.tick()
    assert len(world.publisher.published) == 2
    with world.sessions() as session:
        rows = session.execute(select(Batch.id, Batch.due_at, Batch.leads, Batch.published_at))
        found = sorted((as_utc(r.due_at), r.leads, r.published_at is not None) for r in rows)
    assert found == [
        (datetime(2026, 11, 24, 16, tzinfo=UTC), 1, True),
        (datetime(2026, 11, 24, 17, tzinfo=UTC), 2, True),
    ]
    assert delivery_of(world.sessions, after_slot).batch_id == (
        delivery_of(world.sessions, third).batch_id
    )


CHICAGO = ZoneInfo("America/Chicago")


def chicago(hour: int, minute: int = 0, second: int = 0) -> datetime:
    return datetime(2026, 11, 24, hour, minute, second, tzinfo=CHICAGO).astimezone(UTC)


def test_a_scheduler_started_after_a_slot_keeps_a_lead_that_came_after_it_for_the_next_slot(
    world: World,
) -> None:
    # given a recipient emailed at 08:00 and 15:00 and a lead pending for it since 08:30
    lead_id = submit(world.sessions, world.configs, "daily", phone_1="5125551212")
    pending_since(world.sessions, lead_id, chicago(8, 30))

    # when a scheduler starts at 10:00 and runs until just before 15:00
    clock = Clock(chicago(10))
    scheduler = Scheduler(world.sessions, world.configs, world.publisher, clock=clock)
    scheduler.tick()
    clock.now = chicago(14, 59, 59)
    scheduler.tick()

    # then nothing is sent: the 08:00 slot it caught up had nothing waiting by 08:00
    assert world.publisher.published == []
    assert delivery_of(world.sessions, lead_id).batch_id is None
    with world.sessions() as session:
        assert session.scalar(select(func.count()).select_from(Batch)) == 0

    # when 15:00 comes
    clock.now = chicago(15)
    scheduler.tick()

    # then the lead goes in the 15:00 batch
    (message,) = world.publisher.published
    assert isinstance(message, DeliverEmail) and message.recipient_id == "twice_daily"
    assert delivery_of(world.sessions, lead_id).batch_id == message.batch_id
    with world.sessions() as session:
        batch = session.get(Batch, message.batch_id)
        assert batch is not None
        assert (as_utc(batch.due_at), batch.leads) == (chicago(15), 1)


def test_a_timing_change_does_not_send_a_lead_that_came_after_the_new_timings_last_slot(
    world: World,
) -> None:
    # given the twice-daily recipient set to hourly, a scheduler running, and a lead of 10:10
    hourly = CONFIG.replace('schedule: "0 8,15 * * *"', "every: 1h")
    apply_config(world.sessions, hourly, {})
    clock = Clock(chicago(10, 5))
    scheduler = Scheduler(world.sessions, world.configs, world.publisher, clock=clock)
    scheduler.tick()
    lead_id = submit(world.sessions, world.configs, "daily", phone_1="5125551212")
    pending_since(world.sessions, lead_id, chicago(10, 10))

    # when the recipient is set back to 08:00 and 15:00 at 10:20
    apply_config(world.sessions, CONFIG, {})
    clock.now = chicago(10, 20)
    scheduler.tick()

    # then the lead is not sent at once but at 15:00
    assert world.publisher.published == []
    clock.now = chicago(15)
    scheduler.tick()
    (message,) = world.publisher.published
    assert delivery_of(world.sessions, lead_id).batch_id == message.batch_id  # type: ignore[attr-defined]


def test_sending_now_takes_every_pending_lead_whatever_its_time(world: World) -> None:
    # given a lead pending since after the 08:00 slot
    lead_id = submit(world.sessions, world.configs, "daily", phone_1="5125551212")
    pending_since(world.sessions, lead_id, chicago(8, 30))

    # when the operator sends the recipient's pending leads now, with an 08:00 stamp
    claimed = batches.claim(world.sessions, "twice_daily", chicago(8), trigger="send")

    # then the lead is in that batch all the same
    assert claimed is not None and claimed.leads == 1
    assert delivery_of(world.sessions, lead_id).batch_id == claimed.batch_id


def test_a_claimed_batch_that_was_never_published_is_published_by_the_sweep(
    world: World,
) -> None:
    # given a batch claimed a minute ago whose claimer died before publishing
    lead_id = submit(world.sessions, world.configs, "later", phone_1="5125551212")
    pending_since(world.sessions, lead_id, utcnow() - timedelta(minutes=2))
    claimed = batches.claim(world.sessions, "batch_buyer", utcnow() - timedelta(minutes=1))
    assert claimed is not None
    with transaction(world.sessions) as session:
        batch = session.get(Batch, claimed.batch_id)
        assert batch is not None
        batch.created_at = utcnow() - timedelta(minutes=1)

    # when a scheduler runs
    Scheduler(world.sessions, world.configs, world.publisher).tick()

    # then the batch's message is published
    assert world.publisher.published == [
        DeliverEmail(recipient_id="batch_buyer", batch_id=claimed.batch_id)
    ]
