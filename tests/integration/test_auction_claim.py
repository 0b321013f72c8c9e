"""The bidders of a lead's auction step are asked once: a copy of its ``RunAuction``
handled while a worker asks them waits (SQLite, or PostgreSQL when
LEADFLOW_TEST_DATABASE_URL is set)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import select

from services.http_delivery import auctions
from shared.configstore import ConfigStore, apply_config
from shared.db.engine import SessionFactory, make_engine, make_session_factory, transaction
from shared.db.models import Event
from shared.errors import Busy
from shared.messaging import RunAuction
from tests.support.routing import submit

CONFIG = """
recipients:
  claim_bidder:
    ping: {url: "http://127.0.0.1:9/ping", response: {price_path: bid}}
    http: {url: "http://127.0.0.1:9/post"}
flows:
  claimed_auction:
    fields: {state: {type: state}}
    sources: {web: {}}
    steps:
      - auction: {recipients: [claim_bidder], timeout: 500ms}
"""


@pytest.fixture
def sessions(database_url: str) -> Iterator[SessionFactory]:
    engine = make_engine(database_url, pool_size=4)
    factory = make_session_factory(engine)
    apply_config(factory, CONFIG, {})
    yield factory
    engine.dispose()


def test_a_copy_of_run_auction_waits_while_the_bidders_are_asked_and_then_asks_nobody(
    sessions: SessionFactory,
) -> None:
    # given a lead waiting at its auction step for its bids
    configs = ConfigStore(sessions, refresh_seconds=0)
    lead_id = submit(sessions, configs, "claimed_auction", state="TX")
    with sessions() as session:
        event_id = session.scalars(
            select(Event.id).where(Event.lead_id == lead_id, Event.type == "auction")
        ).one()
    message = RunAuction(lead_id=lead_id, event_id=event_id)

    # when a worker claims the asking, then a copy of the message comes
    with transaction(sessions) as session:
        asking = auctions.prepare(session, configs, message)
    assert asking is not None and asking.bidders == ["claim_bidder"]

    # then the copy waits, and once the bids are in it asks nobody
    with pytest.raises(Busy), transaction(sessions) as session:
        auctions.prepare(session, configs, message)
    with transaction(sessions) as session:
        auctions.record(session, asking, [])
    with transaction(sessions) as session:
        assert auctions.prepare(session, configs, message) is None
