"""Flow duplicates claimed in intake's transaction (SPEC section 14), on SQLite and
PostgreSQL: a match in the same batch or an earlier one, and a key forgotten after its
lookback."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select, update

from services.intake.leads import NewLead, new_lead
from services.intake.store import LeadWriter, Written
from shared import resubmits
from shared.db.engine import SessionFactory, make_engine, make_session_factory, transaction, utcnow
from shared.db.models import Base
from shared.flowconfig import LeadflowConfig, load_config_text
from tests.support.routing import lead_row

FLOWS = load_config_text(
    """
flows:
  dups:
    fields: {email: {type: email}}
    duplicates: {keys: [[email]], lookback: 1h}
    sources: {web: {}}
""",
    {},
)


@pytest.fixture
def sessions(database_url: str) -> Iterator[SessionFactory]:
    engine = make_engine(database_url)
    yield make_session_factory(engine)
    engine.dispose()


def lead(email: str, config: LeadflowConfig = FLOWS, flow_id: str = "dups") -> NewLead:
    return new_lead(
        config_version=1,
        flow_id=flow_id,
        flow=config.flows[flow_id],
        source_id="web",
        submitted={"email": email},
        received_at=utcnow(),
        reply_to=None,
    )


def write(
    sessions: SessionFactory, items: list[NewLead], config: LeadflowConfig = FLOWS
) -> list[Written]:
    """Hand every lead to a running writer at once (one batch)."""

    async def scenario() -> list[Any]:
        with ThreadPoolExecutor(2) as executor:
            writer = LeadWriter(sessions, executor, lambda _version: config)
            task = asyncio.create_task(writer.run())
            try:
                return await asyncio.gather(*(writer.write(i) for i in items))
            finally:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)

    return asyncio.run(scenario())


def test_a_match_later_in_the_same_batch_is_refused_as_the_first_ones_duplicate(
    sessions: SessionFactory,
) -> None:
    # given two leads with one e-mail in one batch
    email = f"{secrets.token_hex(4)}@example.com"
    first, second = lead(email), lead(email.upper())

    # when they are written together
    write(sessions, [first, second])

    # then the first is accepted and the second names it
    assert lead_row(sessions, first.lead_id).duplicate_of is None
    refused = lead_row(sessions, second.lead_id)
    assert (refused.state, refused.outcome, refused.reason) == ("done", "failure", "Duplicate")
    assert refused.duplicate_of == first.lead_id


def capped_flow(room: int = 1) -> tuple[LeadflowConfig, str]:
    """A flow of its own (cap counters stay in the test database) taking ``room`` leads."""
    flow_id = f"capped_{secrets.token_hex(4)}"
    text = f"""
flows:
  {flow_id}:
    fields: {{email: {{type: email}}}}
    duplicates: {{keys: [[email]], lookback: 1h}}
    caps: [{{max: {room}, per: total}}]
    sources: {{web: {{}}}}
"""
    return load_config_text(text, {}), flow_id


def outcome_of(sessions: SessionFactory, lead_id: str) -> tuple[str | None, str | None]:
    row = lead_row(sessions, lead_id)
    return row.reason, row.duplicate_of


def test_a_duplicate_of_an_accepted_lead_is_refused_as_a_duplicate_though_the_cap_is_full(
    sessions: SessionFactory,
) -> None:
    # given a flow whose one slot an accepted lead took
    config, flow_id = capped_flow()
    email = f"{secrets.token_hex(4)}@example.com"
    first = lead(email, config, flow_id)
    write(sessions, [first], config)

    # when a lead with its e-mail comes, in a later batch, and one with another e-mail
    again, other = lead(email, config, flow_id), lead(f"x{email}", config, flow_id)
    write(sessions, [again, other], config)

    # then duplicates decide before caps: the match is a duplicate naming the first, the
    # other fails on the cap and holds no key (it was not accepted)
    assert outcome_of(sessions, first.lead_id) == (None, None)
    assert outcome_of(sessions, again.lead_id) == ("Duplicate", first.lead_id)
    assert outcome_of(sessions, other.lead_id) == ("Cap reached", None)
    assert held_by(sessions, other.lead_id) == 0


def test_a_duplicate_in_the_same_batch_takes_no_cap_slot_from_the_leads_after_it(
    sessions: SessionFactory,
) -> None:
    # given a flow with room for two, and in one batch a lead, its duplicate and another
    config, flow_id = capped_flow(room=2)
    email = f"{secrets.token_hex(4)}@example.com"
    first, again = lead(email, config, flow_id), lead(email, config, flow_id)
    other = lead(f"x{email}", config, flow_id)

    # when they are written together
    write(sessions, [first, again, other], config)

    # then the duplicate takes no slot: the other lead has the second one
    assert outcome_of(sessions, first.lead_id) == (None, None)
    assert outcome_of(sessions, again.lead_id) == ("Duplicate", first.lead_id)
    assert outcome_of(sessions, other.lead_id) == (None, None)


def held_by(sessions: SessionFactory, lead_id: str) -> int:
    table = Base.metadata.tables["submissions"]
    with sessions() as session:
        return session.scalar(select(func.count()).where(table.c.record_id == lead_id)) or 0


def expire(sessions: SessionFactory, lead_id: str) -> None:
    table = Base.metadata.tables["submissions"]
    with transaction(sessions) as session:
        session.execute(
            update(table)
            .where(table.c.record_id == lead_id)
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )


def test_a_key_is_forgotten_after_its_lookback(sessions: SessionFactory) -> None:
    # given an accepted lead whose lookback has run out
    email = f"{secrets.token_hex(4)}@example.com"
    first = lead(email)
    write(sessions, [first])
    expire(sessions, first.lead_id)

    # when a lead with the same e-mail comes
    later = lead(email)
    write(sessions, [later])

    # then it is accepted, and the key is now the later lead's
    assert lead_row(sessions, later.lead_id).outcome == "success"  # a flow without steps
    assert lead_row(sessions, later.lead_id).duplicate_of is None
    assert (held_by(sessions, first.lead_id), held_by(sessions, later.lead_id)) == (0, 1)

    # and once its lookback has run out too, pruning forgets it
    expire(sessions, later.lead_id)
    with transaction(sessions) as session:
        resubmits.prune(session.connection(), utcnow())
    assert held_by(sessions, later.lead_id) == 0
