"""Profit reports (SPEC section 15): leads, sales and money by source, recipient, flow or
day, from the leads, their deliveries and the ledger; the money figures are sums of
ledger rows, so a report agrees with the ledger to the cent.

A lead belongs to the day it was received (in ``LEADFLOW_TIMEZONE``) and to its flow and
source; by recipient, ``leads`` counts the leads sent to it and the money is the
recipient's own rows (no cost). Two ``GROUP BY`` queries a report, each over one table
and no join: the leads carry whether they were sold and returned, the ledger's rows the
lead's flow, source and time of receipt (measured: a join of a million leads to their
deliveries and ledger rows took about two seconds).
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, Date, Integer, Table, case, cast, func, literal, select

from shared import deliveries
from shared.db.models import Base
from shared.money.ledger import CHARGEBACK, COST, RETURN, REVENUE
from shared.money.pricing import cents, to_json

BY = ("source", "recipient", "flow", "day")
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
_PINGS: Table = Base.metadata.tables["pings"]
_BIDS: Table = Base.metadata.tables["ping_bids"]


@dataclass
class Row:
    key: str
    counts: dict[str, int] = field(default_factory=dict)
    money: dict[str, Decimal] = field(default_factory=dict)

    def add(self, money: dict[str, Decimal] | None = None, **counts: int) -> None:
        """Figures of one group of a query (several groups may make one row: the quarter
        hours of a day in a zone other than UTC, on SQLite)."""
        for name, n in counts.items():
            self.counts[name] = self.counts.get(name, 0) + n
        for kind, amount in (money or {}).items():
            self.money[kind] = self.money.get(kind, Decimal(0)) + amount

    def figures(self) -> dict[str, Any]:
        leads = self.counts.get("leads", 0)
        bids = self.counts.get("bids", 0)
        bid_total = self.money.get("bids", Decimal(0))
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
            "pings": self.counts.get("pings", 0),
            "bids": bids,
            "average_bid": cents(bid_total / bids) if bids else cents(0),
            "cost": cents(cost),
            "revenue": cents(revenue),
            "returns": cents(returns),
            "chargebacks": cents(chargebacks),
            "profit": cents(revenue - returns - cost + chargebacks),
            "cost_per_lead": cents(cost / per) if per else cents(0),
            "revenue_per_lead": cents(revenue / per) if per else cents(0),
        }


def _day(connection: Connection, column: Any, zone: str) -> Any:
    """The day of ``column`` in ``zone``: PostgreSQL converts; SQLite, which has no zone
    database, gives UTC dates, or (another zone) the UTC quarter hour, which ``_local``
    turns into its local day (every zone's offset is a whole number of quarter hours)."""
    if connection.dialect.name == "postgresql":
        return cast(func.timezone(zone, column), Date)
    if zone == "UTC":
        return func.date(column)
    quarter = func.cast(func.strftime("%M", column), Integer) / 15
    return func.strftime("%Y-%m-%dT%H:", column).op("||")(func.printf("%02d", quarter * 15))


def _local(value: Any, zone: str) -> Any:
    """A SQLite quarter hour (UTC) as its day in ``zone``; any other key as it is."""
    if isinstance(value, str) and len(value) == 16 and value[10] == "T":
        start = datetime.fromisoformat(value).replace(tzinfo=UTC)
        return start.astimezone(ZoneInfo(zone)).date().isoformat()
    return value


def _key(connection: Connection, table: Table, by: str, zone: str, at: str = "received_at") -> Any:
    """What a row of ``table`` (leads, the ledger, pings and bids: each carries the flow,
    the source and a time, ``at``) is reported under."""
    if by == "source":
        return (table.c.flow_id + "/" + table.c.source_id).label("key")
    if by == "flow":
        return table.c.flow_id.label("key")
    return _day(connection, table.c[at], zone).label("key")


def _window(column: Any, since: datetime | None, until: datetime | None) -> list[Any]:
    return [
        c
        for c in (column >= since if since else None, column < until if until else None)
        if c is not None
    ]


def report(
    connection: Connection,
    by: str,
    since: datetime | None = None,
    until: datetime | None = None,
    zone: str = "UTC",
) -> list[dict[str, Any]]:
    """One row per source, recipient, flow or day (in ``zone``: ``LEADFLOW_TIMEZONE``),
    ordered by its key; leads received in [since, until) (by recipient: sent to it then).
    Two queries, each over one table: the leads (or the deliveries) and the ledger."""
    if by not in BY:
        raise ValueError(f"--by must be one of {', '.join(BY)}")
    # limits as UTC: SQLite compares stored UTC text with the value's own wall clock
    since = since.astimezone(UTC) if since is not None else None
    until = until.astimezone(UTC) if until is not None else None
    rows: dict[str, Row] = {}

    def row(value: Any) -> Row:
        text = str(_local(value, zone))
        return rows.setdefault(text, Row(text))

    if by == "recipient":
        key = _DELIVERIES.c.recipient_id.label("key")
        counted = select(
            key,
            func.count(),
            func.count(),
            literal(0),  # a lead sent to a recipient was not failed at intake
            func.count(case((_DELIVERIES.c.status.in_(deliveries.SOLD), 1))),
            func.count(case((_DELIVERIES.c.status == "returned", 1))),
        ).where(*_window(_DELIVERIES.c.created_at, since, until))
        money_key = _LEDGER.c.party.label("key")
        money = select(money_key, _LEDGER.c.kind, func.sum(_LEDGER.c.amount)).where(
            _LEDGER.c.party_type == "recipient", *_window(_LEDGER.c.received_at, since, until)
        )
    else:
        key = _key(connection, _LEADS, by, zone)
        counted = select(
            key,
            func.count(),
            func.count(case((_LEADS.c.accepted.is_not(False), 1))),
            func.count(case((_LEADS.c.accepted.is_(False), 1))),
            func.count(case((_LEADS.c.sold.is_(True), 1))),
            func.count(case((_LEADS.c.returned.is_(True), 1))),
        ).where(*_window(_LEADS.c.received_at, since, until))
        money_key = _key(connection, _LEDGER, by, zone)
        money = select(money_key, _LEDGER.c.kind, func.sum(_LEDGER.c.amount)).where(
            *_window(_LEDGER.c.received_at, since, until)
        )
    for value, leads, accepted, failed, sold, returned in connection.execute(counted.group_by(key)):
        row(value).add(leads=leads, accepted=accepted, failed=failed, sold=sold, returned=returned)
    for value, kind, amount in connection.execute(money.group_by(money_key, _LEDGER.c.kind)):
        row(value).add({kind: Decimal(str(amount))})
    _auctions(connection, by, zone, since, until, row)
    return [{by: r.key, **r.figures()} for r in sorted(rows.values(), key=lambda r: r.key)]


def _auctions(
    connection: Connection,
    by: str,
    zone: str,
    since: datetime | None,
    until: datetime | None,
    row: Any,
) -> None:
    """Pings and bids: by recipient, the pings it was sent and the bids it made; else the
    sources' pings and the bids their pings and leads drew. One query over each table."""
    is_bid = _BIDS.c.outcome == "bid"
    pinged: Any
    if by == "recipient":
        bid_key = _BIDS.c.recipient_id.label("key")
        pinged = func.count(case((_BIDS.c.pinged.is_(True), 1)))
    else:
        bid_key = _key(connection, _BIDS, by, zone, "at")
        pinged = literal(0)
        ping_key = _key(connection, _PINGS, by, zone, "created_at")
        counted = select(ping_key, func.count()).where(*_window(_PINGS.c.created_at, since, until))
        for value, pings in connection.execute(counted.group_by(ping_key)):
            row(value).add(pings=pings)
    bids = select(
        bid_key,
        pinged,
        func.count(case((is_bid, 1))),
        func.sum(case((is_bid, _BIDS.c.amount), else_=0)),
    ).where(*_window(_BIDS.c.at, since, until))
    for value, pings, count, total in connection.execute(bids.group_by(bid_key)):
        figures = row(value)
        figures.add({"bids": Decimal(str(total or 0))}, pings=pings, bids=count)


def as_text(rows: list[dict[str, Any]], by: str) -> tuple[list[str], list[list[str]]]:
    """The header and each row's figures as text (amounts with 2 places)."""
    columns = [by, *COLUMNS]
    return columns, [[f"{r[c]:.2f}" if c in MONEY else str(r[c]) for c in columns] for r in rows]


def as_csv(rows: list[dict[str, Any]], by: str) -> str:
    """CSV with a header row; amounts as plain numbers with 2 places."""
    columns, text = as_text(rows, by)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    writer.writerows(text)
    return out.getvalue()


def as_json(rows: list[dict[str, Any]]) -> str:
    """JSON with amounts as plain numbers with 2 places (``12.50``, not ``"12.50"``)."""
    return to_json(rows, indent=1)
