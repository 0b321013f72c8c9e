"""The report agrees with the ledger to the cent (SPEC section 15), for any leads, sales
and returns: a property test on the test run's database (SQLite, or PostgreSQL with
LEADFLOW_TEST_DATABASE_URL). Each example writes its own leads (its own flow, sources,
recipients and day) through the ledger's own functions and compares every report with
sums made here."""

from __future__ import annotations

import itertools
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import insert

from shared.db.engine import SessionFactory, make_engine, make_session_factory, transaction
from shared.db.models import Base
from shared.db.rows import event_row
from shared.money import ledger, reports

pytestmark = pytest.mark.filterwarnings("ignore::sqlalchemy.exc.SAWarning")
DAYS = itertools.count()
AMOUNT = st.decimals(min_value=Decimal("0.01"), max_value=Decimal("999.99"), places=2)


@dataclass
class Sale:
    recipient: int
    revenue: Decimal
    returned: bool


@dataclass
class Lead:
    source: int
    accepted: bool
    cost: Decimal | None
    chargeback: bool
    sales: list[Sale]


LEADS = st.lists(
    st.builds(
        Lead,
        source=st.integers(0, 1),
        accepted=st.booleans(),
        cost=st.none() | AMOUNT,
        chargeback=st.booleans(),
        sales=st.lists(
            st.builds(Sale, recipient=st.integers(0, 2), revenue=AMOUNT, returned=st.booleans()),
            max_size=3,
            unique_by=lambda s: s.recipient,
        ),
    ),
    min_size=1,
    max_size=12,
)


@pytest.fixture(scope="module")
def sessions(database_url: str) -> Iterator[SessionFactory]:
    engine = make_engine(database_url)
    yield make_session_factory(engine)
    engine.dispose()


def store(sessions: SessionFactory, leads: list[Lead], flow: str, day: datetime) -> None:
    """The leads, their step events and deliveries, and their ledger rows."""
    rows: dict[str, list[dict[str, Any]]] = {"leads": [], "events": [], "deliveries": []}
    entries = []
    for n, lead in enumerate(leads):
        lead_id, source = secrets.token_hex(12), f"{flow}-s{lead.source}"
        at = day + timedelta(minutes=n)
        of = ledger.LeadOf(lead_id, flow, source, at)
        rows["leads"].append(
            {
                "id": lead_id,
                "flow_id": flow,
                "source_id": source,
                "config_version": 1,
                "received_at": at,
                "state": "done",
                "outcome": "success" if lead.accepted else "failure",
                "price": 0.0,
                "fields": {},
                "step_index": 0,
                "version": 1,
                "accepted": lead.accepted,
                "cost": lead.cost if lead.accepted else None,
                "sold": lead.accepted and bool(lead.sales),
                "returned": lead.accepted and any(s.returned for s in lead.sales),
            }
        )
        if not lead.accepted:
            continue
        party = ledger.source_party(flow, source)
        if lead.cost:
            entries.append(ledger.entry(ledger.COST, of, "source", party, lead.cost, at))
        for step, sale in enumerate(lead.sales):
            event_id, recipient = secrets.token_hex(12), f"{flow}-r{sale.recipient}"
            rows["events"].append(
                event_row(
                    id=event_id,
                    lead_id=lead_id,
                    type="recipient",
                    started_at=at,
                    step=step,
                    recipient_id=recipient,
                    outcome="success",
                )
            )
            rows["deliveries"].append(
                {
                    "event_id": event_id,
                    "lead_id": lead_id,
                    "recipient_id": recipient,
                    "kind": "http",
                    "status": "returned" if sale.returned else "delivered",
                    "attempts": 1,
                    "created_at": at,
                    "updated_at": at,
                    "delivered_at": at,
                }
            )
            entries.append(
                ledger.entry(ledger.REVENUE, of, "recipient", recipient, sale.revenue, at, event_id)
            )
            if sale.returned:
                entries.append(
                    ledger.entry(
                        ledger.RETURN, of, "recipient", recipient, sale.revenue, at, event_id
                    )
                )
        if lead.chargeback and lead.cost and any(s.returned for s in lead.sales):
            entries.append(ledger.entry(ledger.CHARGEBACK, of, "source", party, lead.cost, at))
    with transaction(sessions) as session:
        for table, values in rows.items():
            if values:
                session.execute(insert(Base.metadata.tables[table]), values)
        ledger.write(session.connection(), entries)


def expected(leads: list[Lead], flow: str, by: str) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}

    def row(key: str) -> dict[str, Any]:
        zero = Decimal("0.00")
        return out.setdefault(
            key,
            {
                "leads": 0,
                "accepted": 0,
                "failed": 0,
                "sold": 0,
                "returned": 0,
                "cost": zero,
                "revenue": zero,
                "returns": zero,
                "chargebacks": zero,
            },
        )

    for lead in leads:
        if by == "recipient":
            for sale in lead.sales if lead.accepted else []:
                r = row(f"{flow}-r{sale.recipient}")
                r["leads"] += 1
                r["accepted"] += 1
                r["sold"] += 1
                r["returned"] += sale.returned
                r["revenue"] += sale.revenue
                r["returns"] += sale.revenue if sale.returned else 0
            continue
        r = row(flow if by == "flow" else f"{flow}/{flow}-s{lead.source}")
        r["leads"] += 1
        r["accepted" if lead.accepted else "failed"] += 1
        if not lead.accepted:
            continue
        r["sold"] += bool(lead.sales)
        r["returned"] += any(s.returned for s in lead.sales)
        r["cost"] += lead.cost or 0
        r["revenue"] += sum((s.revenue for s in lead.sales), Decimal(0))
        r["returns"] += sum((s.revenue for s in lead.sales if s.returned), Decimal(0))
        if lead.chargeback and lead.cost and any(s.returned for s in lead.sales):
            r["chargebacks"] += lead.cost
    for r in out.values():
        r["profit"] = r["revenue"] - r["returns"] - r["cost"] + r["chargebacks"]
    return out


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(leads=LEADS)
def test_every_report_is_the_sum_of_the_ledger_to_the_cent(
    sessions: SessionFactory, leads: list[Lead]
) -> None:
    # given random leads, sales, returns and chargebacks on a day of their own
    flow = f"p{secrets.token_hex(4)}"
    day = datetime(1990, 1, 1, tzinfo=UTC) + timedelta(days=next(DAYS))
    store(sessions, leads, flow, day)

    # when each report is asked for that day
    for by in ("source", "recipient", "flow"):
        with sessions() as session:
            got = reports.report(session.connection(), by, day, day + timedelta(days=1))

        # then each row is what the leads add up to, to the cent
        want = expected(leads, flow, by)
        mine = {r[by]: r for r in got if r[by] in want}
        assert set(mine) == set(want)
        for key, figures in want.items():
            for name, value in figures.items():
                assert mine[key][name] == value, (by, key, name)


@pytest.mark.parametrize(
    ("zone", "times", "days"),
    [
        # Chicago is UTC-6 in January: 05:30 UTC is the evening before
        ("America/Chicago", ["2031-01-10T05:30", "2031-01-10T06:30"], ["2031-01-09", "2031-01-10"]),
        # Kathmandu is UTC+5:45: a quarter hour apart, two days
        ("Asia/Kathmandu", ["2031-02-10T18:14", "2031-02-10T18:16"], ["2031-02-10", "2031-02-11"]),
        ("UTC", ["2031-03-10T00:00", "2031-03-10T23:59"], ["2031-03-10", "2031-03-10"]),
    ],
)
def test_a_report_by_day_counts_each_lead_on_its_day_in_the_deployments_zone(
    sessions: SessionFactory, zone: str, times: list[str], days: list[str]
) -> None:
    # given a sold lead at each time, costing 1.00 and sold for 3.00
    flow = f"z{secrets.token_hex(4)}"
    sale = Lead(source=0, accepted=True, cost=Decimal(1), chargeback=False, sales=[])
    sale.sales.append(Sale(recipient=0, revenue=Decimal(3), returned=False))
    for at in times:
        store(sessions, [sale], flow, datetime.fromisoformat(at).replace(tzinfo=UTC))

    # when the report by day is asked for in that zone, around those times
    first = datetime.fromisoformat(times[0]).replace(tzinfo=UTC)
    with sessions() as session:
        got = reports.report(
            session.connection(), "day", first - timedelta(days=1), first + timedelta(days=2), zone
        )

    # then each lead, its cost and its revenue count on its local day
    want: dict[str, tuple[int, Decimal, Decimal]] = {}
    for day in days:
        leads, cost, revenue = want.get(day, (0, Decimal(0), Decimal(0)))
        want[day] = (leads + 1, cost + 1, revenue + 3)
    assert {r["day"]: (r["leads"], r["cost"], r["revenue"]) for r in got} == want


def test_report_dates_are_days_in_the_deployments_zone_on_either_database(
    sessions: SessionFactory,
) -> None:
    # given a lead at 23:30 in Chicago on 9 January and one at 00:30 on the 10th
    flow = f"w{secrets.token_hex(4)}"
    sale = Lead(source=0, accepted=True, cost=Decimal(1), chargeback=False, sales=[])
    for at in ("2032-01-10T05:30", "2032-01-10T06:30"):
        store(sessions, [sale], flow, datetime.fromisoformat(at).replace(tzinfo=UTC))

    # when the report is asked for the 10th, from its local midnight to the next
    chicago = ZoneInfo("America/Chicago")
    since = datetime(2032, 1, 10, tzinfo=chicago)
    with sessions() as session:
        got = reports.report(
            session.connection(), "day", since, since + timedelta(days=1), "America/Chicago"
        )

    # then only the lead of the 10th counts
    assert [(r["day"], r["leads"]) for r in got] == [("2032-01-10", 1)]
