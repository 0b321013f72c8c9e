"""What the console's pages read: each a query over the tables the CLI reads too, lists
paged by key (never OFFSET), so a page costs the same on the millionth lead."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, TypeVar

from sqlalchemy import Connection, Select, func, select

from shared.db.engine import as_utc
from shared.db.models import ConfigVersion, DeadLetter, Delivery, Lead
from shared.db.queries import from_key, where_given
from shared.gates.caps import window_of

PAGE = 50
MINUTE = "%Y-%m-%d %H:%M"
R = TypeVar("R")
K = TypeVar("K")


@dataclass(frozen=True, slots=True)
class LeadPage:
    rows: list[dict[str, Any]]
    next_before: str | None  # the last lead's id: the next page's key


@dataclass(frozen=True, slots=True)
class LeadSearch:
    """What the leads page looks for (each criterion optional; e-mail and phone in the
    form of ``shared.leaddata.contacts``)."""

    flow_id: str | None = None
    source_id: str | None = None
    outcome: str | None = None
    email: str | None = None
    phone: str | None = None
    day: date | None = None  # received that day (UTC)


def leads(connection: Connection, search: LeadSearch, before: str | None = None) -> LeadPage:
    """The newest leads first, ``PAGE`` at a time: after the lead ``before`` (its
    ``(received_at, id)`` is the key; the index on ``received_at``, or on the e-mail or
    phone searched for, serves it)."""
    query: Select[*tuple[Any, ...]] = select(
        Lead.id,
        Lead.flow_id,
        Lead.source_id,
        Lead.received_at,
        Lead.state,
        Lead.outcome,
        Lead.reason,
        Lead.price,
        Lead.email,
        Lead.phone,
    )
    query = where_given(
        query,
        (Lead.flow_id, search.flow_id),
        (Lead.source_id, search.source_id),
        (Lead.email, search.email),
        (Lead.phone, search.phone),
    )
    if search.outcome == "queued":
        query = query.where(Lead.state != "done")
    elif search.outcome:
        query = query.where(Lead.outcome == search.outcome, Lead.state == "done")
    if search.day is not None:
        start = datetime.combine(search.day, time(), UTC)
        query = query.where(Lead.received_at >= start, Lead.received_at < start + timedelta(1))
    key = before if before and len(before) <= 32 else None
    query = from_key(query, connection, Lead.received_at, Lead.id, key, newest_first=True)
    rows = [
        {
            "id": r.id,
            "flow_id": r.flow_id,
            "source_id": r.source_id,
            "received_at": _iso(r.received_at),
            "outcome": r.outcome if r.state == "done" else "queued",
            "reason": r.reason,
            "price": f"{r.price or 0:.2f}",
            "email": r.email or "",
            "phone": r.phone or "",
        }
        for r in connection.execute(query.limit(PAGE + 1))
    ]
    return LeadPage(*first_page(rows, lambda row: row["id"]))


def first_page(rows: list[R], key: Callable[[R], K]) -> tuple[list[R], K | None]:
    """The first ``PAGE`` of ``rows`` (read with a limit of ``PAGE + 1``), and the next
    page's key: the last row's ``key``, None when no row is left."""
    if len(rows) <= PAGE:
        return rows, None
    return rows[:PAGE], key(rows[PAGE - 1])


def leads_by_minute(connection: Connection, now: datetime, hours: int) -> list[dict[str, Any]]:
    """Leads received in each minute of the last ``hours`` hours, by outcome (queued: not
    done yet), oldest first."""
    minutes = hours * 60
    since = (now - timedelta(minutes=minutes - 1)).replace(second=0, microsecond=0)
    if connection.dialect.name == "postgresql":
        bucket = func.date_trunc("minute", func.timezone("UTC", Lead.received_at))
    else:
        bucket = func.strftime(MINUTE, Lead.received_at)
    by_minute = {
        minute.strftime(MINUTE) if isinstance(minute, datetime) else str(minute): counts
        for minute, counts in _by_outcome(connection, bucket, since).items()
    }
    rows = []
    for i in range(minutes):
        key = (since + timedelta(minutes=i)).strftime(MINUTE)
        counts = by_minute.get(key, {})
        rows.append({"minute": key[-5:], "counts": counts, "total": sum(counts.values())})
    return rows


def _by_outcome(
    connection: Connection, key: Any, since: datetime, *where: Any
) -> dict[Any, dict[str, int]]:
    """Leads received since ``since`` (and matching ``where``), counted by ``key`` and by
    outcome (queued: not done yet)."""
    outcome = func.coalesce(Lead.outcome, "queued")
    counts: dict[Any, dict[str, int]] = {}
    query = select(key, outcome, func.count()).where(Lead.received_at >= since, *where)
    for value, kind, count in connection.execute(query.group_by(key, outcome)):
        counts.setdefault(value, {})[str(kind)] = count
    return counts


def parked_count(connection: Connection) -> int:
    return int(
        connection.execute(
            select(func.count()).select_from(DeadLetter).where(DeadLetter.state == "parked")
        ).scalar_one()
    )


def _iso(value: datetime | None) -> str | None:
    value = as_utc(value)
    return value.strftime("%Y-%m-%d %H:%M:%S") if value is not None else None


def pending_counts(connection: Connection) -> dict[str, int]:
    """Leads waiting for each manual or batch recipient (``pending``, in no batch yet)."""
    rows = connection.execute(
        select(Delivery.recipient_id, func.count())
        .where(Delivery.status == "pending", Delivery.batch_id.is_(None))
        .group_by(Delivery.recipient_id)
    )
    return {recipient_id: count for recipient_id, count in rows}


def today_by_flow(
    connection: Connection, now: datetime, zones: Mapping[str, str]
) -> dict[str, dict[str, int]]:
    """Leads each flow (id -> its time zone) received since midnight in its zone (SPEC
    sections 12-16: a calendar window in the zone that applies), by outcome (queued: not
    done). One query a zone."""
    flows_of: dict[str, list[str]] = {}
    for flow_id, zone in zones.items():
        flows_of.setdefault(zone, []).append(flow_id)
    counts: dict[str, dict[str, int]] = {}
    for zone, flow_ids in flows_of.items():
        midnight = window_of("day", zone, now).start
        assert midnight is not None  # a day always starts
        found = _by_outcome(connection, Lead.flow_id, midnight, Lead.flow_id.in_(flow_ids))
        counts.update(found)
    return counts


def config_versions(connection: Connection, limit: int = 20) -> list[dict[str, Any]]:
    rows = connection.execute(
        select(ConfigVersion.id, ConfigVersion.created_at, ConfigVersion.checksum)
        .order_by(ConfigVersion.id.desc())
        .limit(limit)
    )
    return [
        {"id": r.id, "created_at": _iso(r.created_at), "checksum": r.checksum[:12]} for r in rows
    ]
