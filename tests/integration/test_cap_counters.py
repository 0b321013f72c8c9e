"""Cap counters (SPEC section 13) on the test run's database (SQLite, or PostgreSQL with
LEADFLOW_TEST_DATABASE_URL): a slot is one conditional update, so transactions taking
slots at once on many connections never exceed the cap; a slot held for a step is given
back on a rejection and kept, with its revenue, on a sale."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from decimal import Decimal

import pytest

from shared.db.engine import SessionFactory, make_engine, make_session_factory, transaction, utcnow
from shared.gates import caps
from shared.gates.caps import Cap, Counters

pytestmark = pytest.mark.filterwarnings("ignore::sqlalchemy.exc.SAWarning")


@pytest.fixture
def sessions(database_url: str) -> Iterator[SessionFactory]:
    engine = make_engine(database_url, pool_size=8)
    yield make_session_factory(engine)
    engine.dispose()


def bound_of(cap: Cap) -> caps.Bound:
    # an owner of its own: the test database is shared by the whole run
    owner = f"test-{secrets.token_hex(4)}"
    return caps.bounds("recipient", owner, [cap], "America/New_York", utcnow())[0]


def held(event_id: str, bound: caps.Bound) -> caps.Hold:
    """The slot a delivery holds (as ``deliveries.cap_holds`` stores it)."""
    (hold,) = [caps.Hold.of(event_id, line) for line in (caps.holding([bound]) or "").splitlines()]
    return hold


def take_one(sessions: SessionFactory, bound: caps.Bound) -> bool:
    """One lead's slot, in a transaction of its own."""
    with transaction(sessions) as session:
        counters = Counters(session.connection(), utcnow())
        counters.lock([bound])
        return counters.take([bound])


def used(sessions: SessionFactory, bound: caps.Bound) -> tuple[int, Decimal]:
    with sessions() as session:
        values = caps.counter_values(session.connection(), [bound.counter])
    return values.get(bound.counter, (0, Decimal(0)))


def test_slots_taken_at_once_on_many_connections_never_exceed_the_cap(
    sessions: SessionFactory,
) -> None:
    # given a cap of 50 a day
    bound = bound_of(Cap(max=50, per="day"))

    # when 200 transactions on 8 connections each try to take a slot at once
    with ThreadPoolExecutor(8) as pool:
        taken = list(pool.map(lambda _: take_one(sessions, bound), range(200)))

    # then exactly 50 got one, and the counter says 50
    assert taken.count(True) == 50
    assert used(sessions, bound)[0] == 50


def test_a_batch_takes_every_cap_or_none(sessions: SessionFactory) -> None:
    # given a free count cap and a full one
    free, full = bound_of(Cap(max=5, per="hour")), bound_of(Cap(max=0, per="day"))

    # when a lead needs a slot of both
    with transaction(sessions) as session:
        counters = Counters(session.connection(), utcnow())
        counters.lock([free, full])
        got = counters.take([free, full])

    # then it gets none, and the free cap's slot is not spent
    assert got is False
    assert used(sessions, free)[0] == 0


def test_a_held_slot_is_given_back_on_a_rejection_and_kept_with_its_revenue_on_a_sale(
    sessions: SessionFactory,
) -> None:
    # given a count cap and a revenue cap, each holding slots for two steps
    count, revenue = (
        bound_of(Cap(max=10, per="day")),
        bound_of(Cap(max_revenue=Decimal(100), per="month")),
    )
    sold, rejected = secrets.token_hex(8), secrets.token_hex(8)
    with transaction(sessions) as session:
        counters = Counters(session.connection(), utcnow())
        counters.lock([count, revenue] * 2)
        for _ in (sold, rejected):
            assert counters.take([count, revenue])
        counters.write()
    assert used(sessions, count)[0] == 2

    # when one step is sold for 12.34 and the other rejected
    with transaction(sessions) as session:
        counters = Counters(session.connection(), utcnow())
        holds = [held(e, b) for e in (sold, rejected) for b in (count, revenue)]
        counters.lock([], settling=[(h.cap_key, h.period) for h in holds])
        caps.settle(
            counters,
            holds,
            {sold: ("success", Decimal("12.34")), rejected: ("failure", Decimal(0))},
        )

    # then one slot is kept, and the sale's price counts
    assert used(sessions, count)[0] == 1
    assert used(sessions, revenue) == (1, Decimal("12.34"))


def test_a_revenue_cap_refuses_once_its_sum_is_reached(sessions: SessionFactory) -> None:
    # given a revenue cap of 20 with a sale of 20 counted
    bound = bound_of(Cap(max_revenue=Decimal(20), per="total"))
    event_id = secrets.token_hex(8)
    with transaction(sessions) as session:
        counters = Counters(session.connection(), utcnow())
        counters.lock([bound])
        assert counters.take([bound])
        counters.write()
    with transaction(sessions) as session:
        counters = Counters(session.connection(), utcnow())
        counters.lock([bound])
        caps.settle(counters, [held(event_id, bound)], {event_id: ("success", Decimal(20))})

    # when the next lead asks for a slot
    # then it is refused
    assert take_one(sessions, bound) is False


def test_a_batch_reserves_its_slots_at_once_and_gives_back_what_it_did_not_take(
    sessions: SessionFactory,
) -> None:
    # given a cap of 5, and a batch that may take up to 3 slots of it
    bound = bound_of(Cap(max=5, per="day"))
    with transaction(sessions) as session:
        counters = Counters(session.connection(), utcnow())
        counters.lock([bound] * 3)

        # when it takes two
        assert counters.take([bound]) and counters.take([bound])
        counters.write()

    # then two are used, not three
    assert used(sessions, bound)[0] == 2

    # and a batch that may take 10 of the 3 left takes them one by one: 3, no more
    with transaction(sessions) as session:
        counters = Counters(session.connection(), utcnow())
        counters.lock([bound] * 10)
        got = [counters.take([bound]) for _ in range(10)]
        counters.write()
    assert got.count(True) == 3
    assert used(sessions, bound)[0] == 5


def test_leads_left_pending_in_one_batch_stop_at_the_revenue_cap_they_fill(
    sessions: SessionFactory,
) -> None:
    # given a revenue cap of 10.00, and three leads of one batch priced 6.00 each, left
    # pending (their revenue counts as their slot is taken)
    bound = bound_of(Cap(max_revenue=Decimal(10), per="day"))

    # when the batch takes a slot for each, its slots reserved at once
    with transaction(sessions) as session:
        counters = Counters(session.connection(), utcnow())
        counters.lock([bound, bound, bound])
        taken = []
        for _ in range(3):
            taken.append(counters.take([bound]))
            if taken[-1]:
                counters.add_revenue([bound], Decimal(6))
        counters.write()

    # then the third is refused: the second filled the cap (12.00 reached 10.00)
    assert taken == [True, True, False]
    assert used(sessions, bound) == (2, Decimal(12))


def test_leads_in_flight_count_their_expected_revenue_so_concurrent_ones_stop_at_the_cap(
    sessions: SessionFactory,
) -> None:
    # given a revenue cap of 100.00 and a buyer whose leads are expected to bring 10.00
    bound = replace(bound_of(Cap(max_revenue=Decimal(100), per="day")), expected=Decimal(10))

    # when 60 leads ask for a slot at once on 8 connections, none of them answered yet
    with ThreadPoolExecutor(8) as pool:
        taken = list(pool.map(lambda _: take_one(sessions, bound), range(60)))

    # then only 10 are sent: the 10 in flight already count 100.00
    assert taken.count(True) == 10
    assert used(sessions, bound) == (10, Decimal(100))


def test_a_sale_settles_its_actual_price_and_a_rejection_takes_back_what_its_slot_counted(
    sessions: SessionFactory,
) -> None:
    # given a revenue cap whose two slots in flight counted 10.00 each
    bound = replace(bound_of(Cap(max_revenue=Decimal(100), per="day")), expected=Decimal(10))
    sold, rejected = secrets.token_hex(8), secrets.token_hex(8)
    assert take_one(sessions, bound) and take_one(sessions, bound)
    assert used(sessions, bound) == (2, Decimal(20))

    # when one is sold for 12.50 (its answer's price) and the other rejected
    holds = [held(sold, bound), held(rejected, bound)]
    with transaction(sessions) as session:
        counters = Counters(session.connection(), utcnow())
        results = {sold: ("success", Decimal("12.50")), rejected: ("failure", Decimal(0))}
        counters.lock([], settling=caps.to_lock(holds, results))
        caps.settle(counters, holds, results)

    # then the cap counts the sale at its price, and nothing of the rejected lead
    assert used(sessions, bound) == (1, Decimal("12.50"))
