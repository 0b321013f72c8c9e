"""When the answer to COMMIT is lost (the connection dropped after COMMIT was sent),
nothing is done twice: the source's retry is a resubmission and gets the stored lead, the
buyer's repeated return is answered as the first, and a worker's claim stays its own."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError

from services.email_delivery import records as email_records
from services.feedback import records as feedback_records
from services.feedback.body import Feedback
from services.http_delivery import records as http_records
from services.intake.leads import NewLead, new_lead
from services.intake.store import LeadWriter, Written
from shared import resubmits
from shared.configstore import ConfigStore, apply_config
from shared.db.engine import transaction, utcnow
from shared.db.migrate import upgrade
from shared.db.models import Delivery, Event, Lead
from shared.errors import Busy
from shared.flowconfig import load_config_text
from shared.messaging import DeliverEmail, DeliverHttp
from tests.support.infra import fresh_database
from tests.support.lostcommit import Database
from tests.support.routing import submit

CONFIG = """
recipients:
  web_buyer: {http: {url: "http://127.0.0.1:9/leads"}}
  mail_buyer: {email: {to: [leads@buyer.example]}}
flows:
  by_http:
    fields: {state: {type: state}}
    sources: {web: {}}
    steps: [{recipient: web_buyer}]
  by_email:
    sources: {web: {}}
    steps: [{recipient: mail_buyer}]
  returnable:
    sources: {web: {}}
    steps: [{recipient: web_buyer, feedback: {returns: {enabled: true}}}]
"""
FLOWS = load_config_text(CONFIG, {})


@pytest.fixture(scope="module")
def own_database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A database of this module's own (the run's shared one has a live stack on it)."""
    with fresh_database(str(tmp_path_factory.mktemp("lost-answers"))) as url:
        upgrade(url)
        yield url


@pytest.fixture
def database(own_database_url: str) -> Iterator[Database]:
    database = Database(own_database_url)
    yield database
    database.engine.dispose()


@pytest.fixture
def configs(database: Database) -> ConfigStore:
    apply_config(database.factory, CONFIG, {})
    return ConfigStore(database.factory, refresh_seconds=0)


def by_http(submitted: dict[str, Any], keys: list[resubmits.HeldKey]) -> NewLead:
    """A lead of the flow ``by_http`` as intake makes it, with its resubmission keys."""
    return new_lead(
        config_version=1,
        flow_id="by_http",
        flow=FLOWS.flows["by_http"],
        source_id="web",
        submitted=submitted,
        received_at=utcnow(),
        reply_to=None,
        keys=keys,
    )


def submissions(count: int) -> list[NewLead]:
    """``count`` different submissions, each with its body's resubmission key."""
    nonce = secrets.token_hex(4)  # (the database is the module's: keys of other tests stay)
    return [
        by_http(
            {"state": "TX", "n": str(n)},
            resubmits.keys_of(
                "by_http",
                "web",
                content_type="application/x-www-form-urlencoded",
                query="",
                body=f"state=TX&n={n}&nonce={nonce}".encode(),
                idempotency_key=None,
                window=60.0,
            ),
        )
        for n in range(count)
    ]


def again(items: list[NewLead]) -> list[NewLead]:
    """The same submissions sent again: new lead ids, the same keys."""
    return [by_http({"state": "TX"}, item.keys) for item in items]


def write(database: Database, items: list[NewLead]) -> list[Any]:
    """Hand every submission to a running writer at once; each waiter's result or error."""

    async def scenario() -> list[Any]:
        with ThreadPoolExecutor(2) as executor:
            writer = LeadWriter(database.factory, executor, lambda _version: FLOWS)
            task = asyncio.create_task(writer.run())
            try:
                return await asyncio.gather(
                    *(writer.write(i) for i in items), return_exceptions=True
                )
            finally:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)

    return asyncio.run(scenario())


def stored(database: Database, lead_ids: list[str]) -> int:
    with database.factory() as session:
        return session.scalar(select(func.count()).where(Lead.id.in_(lead_ids))) or 0


@pytest.mark.parametrize("happens", ["stored", "not stored"])
def test_a_batch_whose_commit_answer_is_lost_is_stored_once_when_the_sources_send_again(
    database: Database, happens: str
) -> None:
    # given a batch whose commit's answer is lost (the commit happened, or not)
    first = submissions(3)
    database.lose_next_commit(happens)

    # when the writer stores it, and the sources, told 503, send the same again
    results = write(database, first)
    database.come_back()
    retried = write(database, again(first))

    # then the first try is an outage for every source
    assert all(isinstance(r, OperationalError) for r in results), results
    # and the second try answers with the stored lead, or stores it now, once either way
    if happens == "stored":
        assert retried == [Written(i.lead_id, resubmission=True) for i in first]
    else:
        assert retried == [Written(r.lead_id) for r in retried]
    lead_ids = [r.lead_id for r in retried]
    assert stored(database, lead_ids) == 3


def test_two_copies_of_one_submission_in_one_batch_store_one_lead(database: Database) -> None:
    # given a submission and its copy arriving together
    (item,) = submissions(1)
    (copy,) = again([item])

    # when both are written in one batch
    results = write(database, [item, copy])

    # then the copy is answered with the first one's lead, and one lead is stored
    assert results == [Written(item.lead_id), Written(item.lead_id, resubmission=True)]
    assert stored(database, [item.lead_id, copy.lead_id]) == 1


def routed_delivery(database: Database, configs: ConfigStore, flow_id: str) -> tuple[str, str]:
    """A lead stored as intake does and routed as the router does: (lead id, event id)."""
    lead_id = submit(database.factory, configs, flow_id, phone_1="5125551212")
    with database.factory() as session:
        event_id = session.scalars(
            select(Delivery.event_id).where(Delivery.lead_id == lead_id)
        ).one()
    return lead_id, event_id


def http_claim(session: Any, configs: ConfigStore, lead_id: str, event_id: str, holder: str) -> int:
    message = DeliverHttp(lead_id=lead_id, event_id=event_id, recipient_id="web_buyer")
    job = http_records.claim(session, configs, message, holder=holder, margin=1.0)
    assert job is not None
    return job.attempt


def email_claim(
    session: Any, configs: ConfigStore, lead_id: str, event_id: str, holder: str
) -> int:
    message = DeliverEmail(recipient_id="mail_buyer", lead_id=lead_id, event_id=event_id)
    job = email_records.claim(session, configs, message, holder=holder, margin=1.0)
    assert not job.final
    return job.claimed.attempt


@pytest.mark.parametrize(
    ("flow_id", "claim"),
    [("by_http", http_claim), ("by_email", email_claim)],
    ids=["http", "email"],
)
def test_a_claim_whose_commit_answer_is_lost_stays_with_its_holder(
    database: Database, configs: ConfigStore, flow_id: str, claim: Any
) -> None:
    # given a routed lead whose delivery claim commits but whose answer is lost
    lead_id, event_id = routed_delivery(database, configs, flow_id)
    database.lose_next_commit("stored")
    with pytest.raises(OperationalError), transaction(database.factory) as session:
        claim(session, configs, lead_id, event_id, "worker-a:m1")
    database.come_back()

    # when the same message comes back to the same worker, and a copy to another one
    with transaction(database.factory) as session:
        attempt = claim(session, configs, lead_id, event_id, "worker-a:m1")
    with pytest.raises(Busy), transaction(database.factory) as session:
        claim(session, configs, lead_id, event_id, "worker-b:m1")

    # then the holder takes it again at once, as the same attempt, and the copy waits
    assert attempt == 1


def test_a_return_sent_again_with_its_idempotency_key_after_a_lost_answer_is_taken_once(
    database: Database, configs: ConfigStore
) -> None:
    # given a delivered lead whose buyer returns it with an Idempotency-Key, the commit's
    # answer lost
    lead_id, event_id = routed_delivery(database, configs, "returnable")
    with transaction(database.factory) as session:
        delivery = session.get(Delivery, event_id)
        assert delivery is not None
        delivery.status, delivery.delivered_at = "delivered", utcnow()
    database.lose_next_commit("stored")
    feedback = Feedback("return", "bad phone")
    with pytest.raises(OperationalError):
        feedback_records.record(database.factory, configs, event_id, feedback, utcnow(), "k-1")
    database.come_back()

    # when the buyer, told 503, sends the same return again with the same key
    receipt = feedback_records.record(
        database.factory, configs, event_id, feedback, utcnow(), "k-1"
    )

    # then it is answered as taken, and the lead was returned once
    assert (receipt.outcome, receipt.http_status) == ("success", 201)
    assert receipt.lead_id == lead_id
    with database.factory() as session:
        taken = session.scalar(
            select(func.count()).where(
                Event.parent_event_id == event_id,
                Event.type == "feedback-received",
                Event.outcome == "success",
            )
        )
    assert taken == 1
    # and a return sent again without the key is refused as a second return
    other = feedback_records.record(database.factory, configs, event_id, feedback, utcnow())
    assert (other.outcome, other.reason) == ("failure", "Lead was already returned")
