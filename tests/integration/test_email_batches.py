"""Schedulers racing for batches against the real database (SQLite, or PostgreSQL when
LEADFLOW_TEST_DATABASE_URL is set): a slot is claimed once, a lead joins one batch."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from services.email_delivery import batches
from shared.configstore import ConfigStore, apply_config
from shared.db.engine import SessionFactory, utcnow
from shared.db.models import Batch, Delivery
from tests.unit.test_email_worker import CONFIG, submit


@pytest.fixture
def sessions(fresh_sessions: SessionFactory) -> SessionFactory:
    apply_config(fresh_sessions, CONFIG, {})
    return fresh_sessions


@pytest.fixture
def configs(sessions: SessionFactory) -> ConfigStore:
    return ConfigStore(sessions, refresh_seconds=0)


def pending_lead(sessions: SessionFactory, configs: ConfigStore) -> str:
    """A lead submitted to the flow that leaves it pending for the batch recipient."""
    return submit(sessions, configs, "later", phone_1="5125551212")


def race(count: int, work: Callable[[int], Any]) -> list[Any]:
    """Run ``work(i)`` in ``count`` threads released at the same moment."""
    start = threading.Barrier(count)
    results: list[Any] = [None] * count
    errors: list[BaseException] = []

    def run(i: int) -> None:
        start.wait()
        try:
            results[i] = work(i)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors, errors
    return results


def batch_of_each_lead(sessions: SessionFactory) -> dict[str, str | None]:
    with sessions() as session:
        rows = session.execute(select(Delivery.lead_id, Delivery.batch_id))
        return {lead_id: batch_id for lead_id, batch_id in rows}


def test_schedulers_racing_for_one_slot_make_exactly_one_batch_with_every_lead(
    sessions: SessionFactory, configs: ConfigStore
) -> None:
    # given ten leads pending for a batch recipient
    lead_ids = {pending_lead(sessions, configs) for _ in range(10)}

    # when eight schedulers claim the same due time at the same moment
    due = utcnow()
    claims = race(8, lambda _i: batches.claim(sessions, "batch_buyer", due))

    # then exactly one of them got a batch, holding every lead
    winners = [c for c in claims if c is not None]
    assert len(winners) == 1
    assert winners[0].leads == 10
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(Batch)) == 1
    assert batch_of_each_lead(sessions) == dict.fromkeys(lead_ids, winners[0].batch_id)


def test_claims_of_different_slots_while_leads_arrive_put_each_lead_in_one_batch(
    sessions: SessionFactory, configs: ConfigStore
) -> None:
    # given leads arriving while eight claimers, each for its own slot, take batches
    lead_ids = {pending_lead(sessions, configs) for _ in range(5)}
    base = utcnow()

    def work(i: int) -> list[batches.Claimed | None]:
        found = []
        for round_ in range(3):
            if i == 0:
                lead_ids.add(pending_lead(sessions, configs))
            due = base + timedelta(seconds=i * 10 + round_)
            found.append(batches.claim(sessions, "batch_buyer", due))
        return found

    claims = [c for found in race(8, work) for c in found if c is not None]
    final = batches.claim(sessions, "batch_buyer", base + timedelta(hours=1))
    if final is not None:
        claims.append(final)

    # then every lead is in exactly one batch, and each batch holds what it counted
    assigned = batch_of_each_lead(sessions)
    assert set(assigned) == lead_ids
    assert all(batch_id is not None for batch_id in assigned.values())
    for claimed in claims:
        assert sum(1 for b in assigned.values() if b == claimed.batch_id) == claimed.leads
    assert sum(c.leads for c in claims) == len(lead_ids)
    assert len({c.batch_id for c in claims}) == len(claims)


def test_a_manual_send_and_a_scheduled_slot_at_once_never_share_a_lead(
    sessions: SessionFactory, configs: ConfigStore
) -> None:
    # given pending leads, when a scheduled claim and two `batches send` run together
    lead_ids = {pending_lead(sessions, configs) for _ in range(20)}
    due = utcnow()

    def work(i: int) -> batches.Claimed | None:
        if i == 0:
            return batches.claim(sessions, "batch_buyer", due)
        return batches.claim(sessions, "batch_buyer", utcnow(), trigger="send")

    claims = [c for c in race(3, work) if c is not None]

    # then the leads are split between the claims with none in two
    assigned = batch_of_each_lead(sessions)
    assert set(assigned) == lead_ids
    assert sum(c.leads for c in claims) == 20
    assert set(assigned.values()) == {c.batch_id for c in claims}


def test_schedulers_racing_for_a_slot_leave_the_leads_that_came_after_its_due_time(
    sessions: SessionFactory, configs: ConfigStore
) -> None:
    # given four leads pending before a slot's due time and three that came after it
    early = {pending_lead(sessions, configs) for _ in range(4)}
    due = utcnow()
    late = {pending_lead(sessions, configs) for _ in range(3)}

    # when eight schedulers claim that slot at the same moment
    claims = race(8, lambda _i: batches.claim(sessions, "batch_buyer", due))

    # then one batch holds the early leads, and the late ones wait for the next slot
    (winner,) = [c for c in claims if c is not None]
    assert winner.leads == 4
    assigned = batch_of_each_lead(sessions)
    assert {assigned[i] for i in early} == {winner.batch_id}
    assert {assigned[i] for i in late} == {None}
    later = batches.claim(sessions, "batch_buyer", utcnow())
    assert later is not None and later.leads == 3
