"""Profit reports (SPEC section 15): leads, sales and money by source, recipient, flow or
day, from the leads, their deliveries and the ledger; the money figures are sums of
ledger rows, so a report agrees with the ledger to the cent.

A lead belongs to the day it was received (UTC) and to its flow and source; by recipient,
``leads`` counts the leads sent to it and the money is the recipient's own rows (no cost).
Each figure is three or four ``GROUP BY`` queries over indexed columns.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, Date, Table, and_, case, cast, distinct, func, select

from shared.db.models import Base
from shared.money.ledger import CHARGEBACK, COST, RETURN, REVENUE
from shared.money.pricing import cents

BY = ("source", "recipient", "flow", "day")
SOLD = ("delivered", "return_requested", "returned", "converted")
COLUMNS = (
    "leads",
    "accepted",
    "failed",
    "sold",
    "returned",
    "pings",
    "bids",
    "average_bid",
    "cost",
    "revenue",
    "returns",
    "chargebacks",
    "profit",
    "cost_per_lead",
    "revenue_per_lead",
)
MONEY = frozenset(
    {"average_bid", "cost", "revenue", "returns", "chargebacks", "profit"}
    | {"cost_per_lead", "revenue_per_lead"}
)

_LEADS: Table = Base.metadata.tables["leads"]
_DELIVERIES: Table = Base.metadata.tables["deliveries"]
_LEDGER: Table = Base.metadata.tables["ledger"]


@dataclass
class Row:
    key: str
    counts: dict[str, int] = field(default_factory=dict)
    money: dict[str, Decimal] = field(default_factory=dict)

    def figures(self) -> dict[str, Any]:
        leads = self.counts.get("leads", 0)
        cost, revenue = self.money.get(COST, Decimal(0)), self.money.get(REVENUE, Decimal(0))
        returns = -self.money.get(RETURN, Decimal(0))
        chargebacks = -self.money.get(CHARGEBACK, Decimal(0))
        per = Decimal(leads) if leads else None
        return {
            "leads": leads,
            "accepted": self.counts.get("accepted", 0),
            "failed": self.counts.get("failed", 0),
            "sold": self.counts.get("sold", 0),
            "returned": self.counts.get("returned", 0),
            "pings": 0,
            "bids": 0,
            "average_bid": cents(0),
            "cost": cents(cost),
            "revenue": cents(revenue),
            "returns": cents(returns),
            "chargebacks": cents(chargebacks),
            "profit": cents(revenue - returns - cost + chargebacks),
            "cost_per_lead": cents(cost / per) if per else cents(0),
            "revenue_per_lead": cents(revenue / per) if per else cents(0),
        }


def _day(connection: Connection, column: Any) -> Any:
    if connection.dialect.name == "postgresql":
        return cast(func.timezone("UTC", column), Date)
    return func.date(column)


def _key(connection: Connection, by: str) -> Any:
    if by == "source":
        return _LEADS.c.flow_id + "/" + _LEADS.c.source_id
    if by == "flow":
        return _LEADS.c.flow_id
    if by == "day":
        return _day(connection, _LEADS.c.received_at)
    return _DELIVERIES.c.recipient_id


def report(
    connection: Connection,
    by: str,
    since: datetime | None = None,
    until: datetime | None = None,
) -> list[dict[str, Any]]:
    """One row per source, recipient, flow or day, ordered by its key; leads received in
    [since, until)."""
    if by not in BY:
        raise ValueError(f"--by must be one of {', '.join(BY)}")
    window = [
        c
        for c in (
            _LEADS.c.received_at >= since if since else None,
            _LEADS.c.received_at < until if until else None,
        )
        if c is not None
    ]
    key = _key(connection, by).label("key")
    rows: dict[str, Row] = {}

    def row(value: Any) -> Row:
        text = str(value)
        return rows.setdefault(text, Row(text))

    failed = _LEADS.c.accepted.is_(False)
    sold = _DELIVERIES.c.status.in_(SOLD)
    joined = _LEADS.join(_DELIVERIES, _DELIVERIES.c.lead_id == _LEADS.c.id)
    if by == "recipient":
        counted = select(
            key,
            func.count(distinct(_DELIVERIES.c.lead_id)),
            func.count(distinct(_DELIVERIES.c.lead_id)),
            func.count(distinct(case((failed, _LEADS.c.id)))),
        ).select_from(joined)
    else:
        counted = select(
            key,
            func.count(),
            func.count(case((_LEADS.c.accepted.is_not(False), 1))),
            func.count(case((failed, 1))),
        )
    for value, leads, accepted, refused in connection.execute(counted.where(*window).group_by(key)):
        row(value).counts.update(leads=leads, accepted=accepted, failed=refused)
    sales = select(
        key,
        func.count(distinct(case((sold, _LEADS.c.id)))),
        func.count(distinct(case((_DELIVERIES.c.status == "returned", _LEADS.c.id)))),
    ).select_from(joined)
    for value, sold_leads, returned in connection.execute(sales.where(*window).group_by(key)):
        row(value).counts.update(sold=sold_leads, returned=returned)
    on = _LEDGER.c.lead_id == _LEADS.c.id
    if by == "recipient":
        money_key = _LEDGER.c.party.label("key")
        money = (
            select(money_key, _LEDGER.c.kind, func.sum(_LEDGER.c.amount))
            .select_from(_LEDGER.join(_LEADS, on))
            .where(_LEDGER.c.party_type == "recipient", *window)
            .group_by(money_key, _LEDGER.c.kind)
        )
    else:
        money = (
            select(key, _LEDGER.c.kind, func.sum(_LEDGER.c.amount))
            .select_from(_LEDGER.join(_LEADS, and_(on)))
            .where(*window)
            .group_by(key, _LEDGER.c.kind)
        )
    for value, kind, amount in connection.execute(money):
        row(value).money[kind] = Decimal(str(amount))
    return [{by: r.key, **r.figures()} for r in sorted(rows.values(), key=lambda r: r.key)]


def as_json(rows: list[dict[str, Any]]) -> str:
    """JSON with amounts as plain numbers with 2 places (``12.50``, not ``"12.50"``)."""

    def value(v: Any) -> str:
        if isinstance(v, Decimal):
            return f"{v:.2f}"
        if isinstance(v, int):
            return str(v)
        return '"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"'

    items = ["{" + ", ".join(f'"{k}": {value(v)}' for k, v in r.items()) + "}" for r in rows]
    return "[" + ",\n ".join(items) + "]"
