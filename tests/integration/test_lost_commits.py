"""When the answer to COMMIT is lost: intake's group commit finds out whether the batch was
stored before it answers, and undoes what it had to refuse; a single request's commit
(feedback) finds out the same way."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, cast

import pytest
from sqlalchemy import delete, insert, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from services.email_delivery import records as email_records
from services.feedback import records as feedback_records
from services.feedback.body import Feedback
from services.http_delivery import records as http_records
from services.intake.leads import NewLead, new_lead
from services.intake.store import LeadWriter
from shared.configstore import ConfigStore, apply_config
from shared.db.doubt import CommitProbe, commit_or_find_out, find_out, transaction_or_find_out
from shared.db.engine import as_utc, make_engine, transaction, utcnow
from shared.db.migrate import upgrade
from shared.db.models import Delivery, Event, Lead, OutboxMessage
from shared.db.rows import event_row
from shared.errors import Busy
from shared.flowconfig import load_config_text
from shared.ids import new_id
from shared.messaging import AsyncBrokerClient, DeliverEmail, DeliverHttp
from shared.outbox import OutboxRelay
from tests.support.infra import POSTGRES_URL, fresh_database, wait_for
from tests.support.lostcommit import Database
from tests.support.routing import submit

CONFIG = load_config_text(
    """
recipients:
  a: {http: {url: "http://a.example/leads"}}
flows:
  f:
    fields: {state: {type: state}}
    sources: {web: {}}
    steps: [{recipient: a}]
""",
    {},
)


@pytest.fixture(scope="module")
def own_database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A database of this module's own (the run's shared one has a live stack's relay
    sweeping and deleting outbox rows, which these tests count)."""
    with fresh_database(str(tmp_path_factory.mktemp("lost-commits"))) as url:
        upgrade(url)
        yield url


@pytest.fixture
def database(own_database_url: str) -> Iterator[Database]:
    database = Database(own_database_url)
    with Session(database.engine) as session, session.begin():
        session.execute(delete(OutboxMessage))  # count() counts every row
    yield database
    database.engine.dispose()


def leads(count: int) -> list[NewLead]:
    return [
        new_lead(
            config_version=1,
            flow_id="f",
            flow=CONFIG.flows["f"],
            source_id="web",
            submitted={"state": "TX"},
            received_at=utcnow(),
            reply_to=None,
        )
        for _ in range(count)
    ]


def write(
    database: Database,
    items: list[NewLead],
    *,
    patience: float,
    back_after: float | None = None,
    then: Callable[[], None] | None = None,
    relay: OutboxRelay | None = None,
) -> list[Any]:
    """Hand every lead to a running writer at once (one batch); each waiter's result or
    error. The database comes back ``back_after`` seconds later, if given; ``then`` runs
    (on a thread) after every waiter is answered, before the writer stops."""

    async def scenario() -> list[Any]:
        with ThreadPoolExecutor(2) as executor:
            writer = LeadWriter(database.factory, executor, relay=relay, patience=patience)
            task = asyncio.create_task(writer.run())
            if back_after is not None:
                asyncio.get_running_loop().call_later(back_after, database.come_back)
            try:
                results = await asyncio.gather(
                    *(writer.write(i) for i in items), return_exceptions=True
                )
                if then is not None:
                    await asyncio.to_thread(then)
                return results
            finally:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)

    return asyncio.run(scenario())


def test_a_lost_commit_answer_for_a_stored_batch_is_answered_as_stored(
    database: Database,
) -> None:
    # given a batch whose commit happens but whose answer is lost, the database back soon
    items = leads(3)
    ids = [i.lead_id for i in items]
    database.lose_next_commit("stored")

    # when the writer stores it
    results = write(database, items, patience=10.0, back_after=0.5)

    # then every waiter gets its outbox row, as for any stored lead, and each is stored once
    assert all(isinstance(r, int) for r in results), results
    assert database.count(Lead, ids) == 3
    assert database.count(Event, ids) == 3
    assert database.outbox_rows() == 3


def test_a_lost_commit_answer_for_a_batch_not_stored_is_an_outage_and_stores_nothing(
    database: Database,
) -> None:
    # given a batch whose commit does not happen and whose answer is lost
    items = leads(2)
    ids = [i.lead_id for i in items]
    database.lose_next_commit("not stored")

    # when the writer stores it
    results = write(database, items, patience=10.0, back_after=0.3)

    # then every waiter gets the outage (a 503 for the source) and nothing is stored
    assert all(isinstance(r, OperationalError) for r in results), results
    assert database.count(Lead, ids) == 0
    assert database.outbox_rows() == 0


def test_a_stored_batch_whose_answer_stays_unknown_is_refused_and_undone_once_the_database_is_back(
    database: Database,
) -> None:
    # given a batch whose commit happens, whose answer is lost, and a database that stays
    # away longer than the writer waits
    items = leads(2)
    ids = [i.lead_id for i in items]
    database.lose_next_commit("stored")

    # when the database comes back after the source was answered
    def afterwards() -> None:
        database.come_back()
        wait_for(lambda: database.count(Lead, ids) == 0, timeout=30, message="undone")

    results = write(database, items, patience=0.5, then=afterwards)

    # then the source was told of the outage, and the leads it will send again are the only
    # ones: the refused leads, their events and their outbox rows are gone
    assert all(isinstance(r, OperationalError) for r in results), results
    assert database.count(Lead, ids) == 0
    assert database.count(Event, ids) == 0
    assert database.outbox_rows() == 0


def test_undoing_a_refused_batch_keeps_a_lead_the_router_already_took(
    database: Database,
) -> None:
    # given a refused batch whose commit had happened and whose answer was lost
    items = leads(2)
    ids = [i.lead_id for i in items]
    database.lose_next_commit("stored")

    # when the router takes its first lead (its first step event, over its own connection)
    # before the database is back for the writer
    def afterwards() -> None:
        router = make_engine(database.url)
        with transaction(sessionmaker(router)) as session:
            session.execute(insert(Event), [first_step(ids[0])])
        router.dispose()
        database.come_back()
        wait_for(lambda: database.count(Lead, ids) == 1, timeout=30, message="undone")

    results = write(database, items, patience=0.5, then=afterwards)

    # then the taken lead stays (it is on its way to buyers) and the other is removed
    assert all(isinstance(r, OperationalError) for r in results), results
    assert database.count(Lead, [ids[0]]) == 1
    assert database.count(Lead, [ids[1]]) == 0
    assert database.count(Event, [ids[1]]) == 0


def first_step(lead_id: str) -> dict[str, Any]:
    return event_row(
        id=new_id(),
        lead_id=lead_id,
        type="recipient",
        step=1,
        recipient_id="a",
        started_at=utcnow(),
    )


def commit_one_outbox_row(database: Database, *, patience: float = 10.0) -> None:
    with database.factory() as session:
        session.begin()
        row = OutboxMessage(queue="q", body="{}", created_at=utcnow())
        session.add(row)
        session.flush()
        row_id = row.id

        def stored(reader: Session) -> bool:
            return reader.get(OutboxMessage, row_id) is not None

        commit_or_find_out(session, stored, factory=database.factory, patience=patience)


@pytest.mark.parametrize(("happens", "outcome"), [("stored", "returns"), ("not stored", "raises")])
def test_a_commit_whose_answer_is_lost_counts_exactly_when_it_happened(
    database: Database, happens: str, outcome: str
) -> None:
    # given a commit whose answer is lost, the database back a moment later
    database.lose_next_commit(happens, back_after=0.3)

    # when it is committed
    try:
        commit_one_outbox_row(database)
        result = "returns"
    except OperationalError:
        result = "raises"

    # then it returns when the row was stored, raises the outage when it was not
    assert result == outcome
    assert database.outbox_rows() == (1 if happens == "stored" else 0)


def test_a_commit_whose_outcome_stays_unknown_raises_the_outage(database: Database) -> None:
    # given a commit whose answer is lost and a database that stays away
    database.lose_next_commit("stored")

    # when it is committed, then the outage is raised once the patience is spent
    with pytest.raises(OperationalError):
        commit_one_outbox_row(database, patience=0.3)


# --- claims: a worker whose claim went unanswered keeps it -----------------------------------

CLAIMS_CONFIG = """
recipients:
  web_buyer: {http: {url: "http://127.0.0.1:9/leads"}}
  mail_buyer: {email: {to: [leads@buyer.example]}}
flows:
  by_http:
    sources: {web: {}}
    steps: [{recipient: web_buyer}]
  by_email:
    sources: {web: {}}
    steps: [{recipient: mail_buyer}]
  returnable:
    sources: {web: {}}
    steps: [{recipient: web_buyer, feedback: {returns: {enabled: true}}}]
"""


def routed_delivery(database: Database, configs: ConfigStore, flow_id: str) -> tuple[str, str]:
    """A lead stored as intake does and routed as the router does: (lead id, event id)."""
    lead_id = submit(database.factory, configs, flow_id, phone_1="5125551212")
    with database.factory() as session:
        event_id = session.scalars(
            select(Delivery.event_id).where(Delivery.lead_id == lead_id)
        ).one()
    return lead_id, event_id


@pytest.fixture
def configs(database: Database) -> ConfigStore:
    apply_config(database.factory, CLAIMS_CONFIG, {})
    return ConfigStore(database.factory, refresh_seconds=0)


def test_an_http_claim_whose_commit_went_unanswered_stays_with_the_worker_that_made_it(
    database: Database, configs: ConfigStore
) -> None:
    # given a routed lead whose delivery claim commits but whose answer is lost
    lead_id, event_id = routed_delivery(database, configs, "by_http")
    message = DeliverHttp(lead_id=lead_id, event_id=event_id, recipient_id="web_buyer")
    database.lose_next_commit("stored", back_after=0.3)

    # when the worker claims it
    claim = transaction_or_find_out(
        database.factory,
        lambda session: http_records.claim(session, configs, message),
        http_records.holds,
    )

    # then the worker holds it and sends (instead of failing and then waiting out its own
    # lease), and a second copy of the message finds it held
    assert claim.state == "send" and claim.job is not None and claim.job.attempt == 1
    with transaction(database.factory) as session:
        assert http_records.claim(session, configs, message).state == "busy"


def test_an_email_claim_whose_commit_went_unanswered_stays_with_the_worker_that_made_it(
    database: Database, configs: ConfigStore
) -> None:
    # given a routed lead whose delivery claim commits but whose answer is lost
    lead_id, event_id = routed_delivery(database, configs, "by_email")
    message = DeliverEmail(recipient_id="mail_buyer", lead_id=lead_id, event_id=event_id)
    database.lose_next_commit("stored", back_after=0.3)

    # when the worker claims it
    job = transaction_or_find_out(
        database.factory,
        lambda session: email_records.claim(session, configs, message),
        email_records.holds,
    )

    # then the worker holds it and sends, and a second copy of the message must wait
    assert not job.final and job.claimed_at is not None
    with pytest.raises(Busy), transaction(database.factory) as session:
        email_records.claim(session, configs, message)


def test_a_claim_whose_commit_did_not_happen_is_an_outage_and_claims_nothing(
    database: Database, configs: ConfigStore
) -> None:
    # given a routed lead whose delivery claim does not commit and whose answer is lost
    lead_id, event_id = routed_delivery(database, configs, "by_http")
    message = DeliverHttp(lead_id=lead_id, event_id=event_id, recipient_id="web_buyer")
    database.lose_next_commit("not stored", back_after=0.3)

    # when the worker claims it, then it meets the outage (and retries later)
    with pytest.raises(OperationalError):
        transaction_or_find_out(
            database.factory,
            lambda session: http_records.claim(session, configs, message),
            http_records.holds,
        )
    # and the next copy of the message takes it at once
    with transaction(database.factory) as session:
        assert http_records.claim(session, configs, message).state == "send"


def test_a_claim_found_out_late_is_stamped_afresh_so_its_lease_runs_from_now(
    database: Database, configs: ConfigStore
) -> None:
    # given a routed lead whose delivery claim commits, its answer lost for a while
    lead_id, event_id = routed_delivery(database, configs, "by_http")
    message = DeliverHttp(lead_id=lead_id, event_id=event_id, recipient_id="web_buyer")
    database.lose_next_commit("stored", back_after=0.3)

    # when the worker claims it and finds out that the claim happened
    claim = transaction_or_find_out(
        database.factory,
        lambda session: http_records.claim(session, configs, message),
        http_records.holds,
        renew=http_records.renew,
    )

    # then the claim is stamped with the time it was found out, and it is still held
    assert claim.job is not None and claim.job.claimed_at is not None
    with database.factory() as session:
        stamped = session.get(Delivery, event_id)
        assert stamped is not None and stamped.status == "sending"
        assert as_utc(stamped.updated_at) == claim.job.claimed_at
        assert http_records.holds(session, claim)


def test_a_return_whose_commit_went_unanswered_is_taken_once_and_answered_as_taken(
    database: Database, configs: ConfigStore
) -> None:
    # given a delivered lead whose buyer returns it, the commit's answer lost for a moment
    lead_id, event_id = routed_delivery(database, configs, "returnable")
    with transaction(database.factory) as session:
        delivery = session.get(Delivery, event_id)
        assert delivery is not None
        delivery.status, delivery.delivered_at = "delivered", utcnow()
    database.lose_next_commit("stored", back_after=0.3)

    # when the return is recorded
    receipt = feedback_records.record(
        database.factory, configs, event_id, Feedback("return", "bad phone"), utcnow()
    )

    # then the buyer is told it was taken (not 503), and a retry of it is refused as a repeat
    assert (receipt.outcome, receipt.http_status) == ("success", 201)
    again = feedback_records.record(
        database.factory, configs, event_id, Feedback("return", "bad phone"), utcnow()
    )
    assert (again.outcome, again.reason) == ("failure", "Lead was already returned")
    assert lead_id == receipt.lead_id


# --- the outbox relay leaves a doubtful batch alone ------------------------------------------


class PublishingClient:
    """A broker client that is always connected and remembers what it published."""

    connected = True

    def __init__(self) -> None:
        self.published: list[str] = []

    async def publish(self, queue: str, body: bytes) -> None:
        self.published.append(body.decode())


def test_the_relay_does_not_sweep_a_batch_while_its_commit_is_in_doubt(
    database: Database,
) -> None:
    # given a relay reading the database over its own connections, and a batch whose
    # commit happens but whose answer is lost for a second
    items = leads(3)
    client = PublishingClient()
    relay_engine = make_engine(database.url)
    relay = OutboxRelay(
        cast(AsyncBrokerClient, client),
        sessionmaker(relay_engine),
        ThreadPoolExecutor(1),
        sweep_seconds=0.0,
    )
    database.lose_next_commit("stored")
    swept_in_doubt: list[int] = []

    def sweep_now() -> int:
        return asyncio.run(relay.sweep(older_than=0.0))

    # when the relay sweeps while the writer is finding out, then again afterwards
    def sweep_then_come_back() -> None:
        swept_in_doubt.append(sweep_now())
        database.come_back()

    async def scenario() -> int:
        with ThreadPoolExecutor(2) as executor:
            writer = LeadWriter(database.factory, executor, relay=relay, patience=10.0)
            task = asyncio.create_task(writer.run())
            writes = asyncio.gather(*(writer.write(i) for i in items))
            await asyncio.to_thread(
                wait_for, lambda: database.outbox_rows(relay_engine) == 3, 10, message="stored"
            )
            await asyncio.to_thread(sweep_then_come_back)
            await writes
            swept_after = await relay.sweep(older_than=0.0)
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            return swept_after

    swept_after = asyncio.run(scenario())
    relay_engine.dispose()

    # then the sweep left the doubtful rows alone, and took them once the batch was settled
    assert swept_in_doubt == [0]
    assert swept_after == 3
    assert len(client.published) == 3


# --- PostgreSQL: a transaction still open on its old connection ------------------------------


@pytest.fixture
def postgres(tmp_path: Path) -> Iterator[Database]:
    with fresh_database(str(tmp_path), base=POSTGRES_URL) as url:
        upgrade(url)
        database = Database(url)
        yield database
        database.engine.dispose()


def test_on_postgresql_a_commit_that_never_arrived_is_settled_by_stopping_its_backend(
    postgres: Database,
) -> None:
    # given a transaction whose COMMIT never reached the server: still open on its backend
    postgres.lose_next_commit("never sent", back_after=0.3)

    # when it is committed, then its backend is stopped, which aborts it: an outage
    with pytest.raises(OperationalError):
        commit_one_outbox_row(postgres)
    assert postgres.outbox_rows() == 0


def test_on_postgresql_the_outcome_of_a_transaction_left_open_is_found_to_be_aborted(
    postgres: Database,
) -> None:
    # given a transaction that wrote a row and was about to commit, left open on its backend
    with postgres.factory() as session:
        session.begin()
        session.add(OutboxMessage(queue="q", body="{}", created_at=utcnow()))
        session.flush()
        probe = CommitProbe.take(session)
        assert probe.postgresql and probe.xid is not None

        # when its outcome is asked (from another connection)
        outcome = find_out(probe, postgres.factory, lambda _session: True, patience=10.0)

        # then its backend was stopped and the transaction is known to be aborted (the
        # read that would say "stored" is not consulted on PostgreSQL)
        assert outcome is False
        with pytest.raises(OperationalError):
            session.execute(select(1))
    assert postgres.outbox_rows() == 0
