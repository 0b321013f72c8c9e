"""Sources' pings (SPEC section 12): what a ping is checked against, how it is stored,
found again and taken by its post.

A ping runs the flow's gates without counting against them (``check``: hours, acceptance
criteria, duplicates and caps read, nothing claimed) and its auction steps in ping mode
(``plan``: the eligible bidders of each, from ``ReadGates``). Its limits
(``ping_limits``) do count: one conditional update per limit of a counter in
``cap_counters`` (``take_limits``), like a cap. A ping is stored with its bids in one
transaction (``store``); a post takes its ping by one conditional update (``claim``), so
of two posts of one ping exactly one goes on.

Longer than 300 lines on purpose: a ping's whole life (checked, stored, found again,
taken by its post, shown) in one room, each part a few short functions over the same two
tables.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, Protocol

from sqlalchemy import Connection, insert, select, update

from shared import auction, resubmits
from shared.auction import Bid
from shared.db.engine import as_utc, iso_utc
from shared.db.models import Base
from shared.flowconfig import AuctionStep, Flow, LeadflowConfig, Recipient
from shared.gates import caps, duplicates, hours, pausing
from shared.ids import is_id
from shared.money.pricing import cents
from shared.rules import evaluate
from shared.templates import render

_PINGS = Base.metadata.tables["pings"]
_BIDS = Base.metadata.tables["ping_bids"]

EXPIRED_REASON = "ping expired"
DUPLICATE_REASON = "duplicate"


def dedupe_key(flow_id: str, source_id: str, submitted: Mapping[str, Any]) -> str:
    """The same fields and values (body and query) from the same source: one key."""
    material = json.dumps(submitted, sort_keys=True, default=str, separators=(",", ":"))
    return resubmits.hash_of(flow_id, source_id, b"ping\0" + material.encode()).hex()


class ReadGates:
    """The gates of a recipient read, nothing taken (``auction.Gates``)."""

    def __init__(self, connection: Connection, now: datetime) -> None:
        self.connection = connection
        self.now = now
        self.paused = pausing.paused(connection)

    def has_room(
        self, recipient_id: str, recipient: Recipient, variables: Mapping[str, Any]
    ) -> bool:
        found = caps.bounds("recipient", recipient_id, recipient.caps, recipient.timezone, self.now)
        return self._room([b for b in found if b.cap.counts(variables)])

    def flow_room(
        self, flow_id: str, flow: Flow, source_id: str, variables: Mapping[str, Any]
    ) -> bool:
        source = flow.sources[source_id]
        found = caps.bounds("flow", flow_id, flow.caps, flow.timezone, self.now)
        found += caps.bounds(
            "source", f"{flow_id}/{source_id}", source.caps, flow.timezone, self.now
        )
        return self._room([b for b in found if b.cap.counts(variables)])

    def _room(self, found: Sequence[caps.Bound]) -> bool:
        if not found:
            return True
        values = caps.counter_values(self.connection, [b.counter for b in found])
        for bound in found:
            used, revenue = values.get(bound.counter, (0, Decimal(0)))
            if bound.cap.max is not None and used >= bound.cap.max:
                return False
            if bound.cap.max_revenue is not None and revenue >= bound.cap.max_revenue:
                return False
        return True

    def holds_duplicate(
        self, recipient_id: str, recipient: Recipient, fields: Mapping[str, Any]
    ) -> bool:
        if recipient.duplicates is None:
            return False
        keys = duplicates.recipient_keys(recipient_id, recipient.duplicates, fields)
        return bool(keys) and resubmits.find(self.connection, keys, self.now) is not None

    def flow_duplicate(
        self, flow_id: str, flow: Flow, source_id: str, fields: Mapping[str, Any]
    ) -> bool:
        keys = duplicates.keys_of(flow_id, source_id, flow.duplicates, fields)
        return bool(keys) and resubmits.find(self.connection, keys, self.now) is not None


class FlowGates(auction.Gates, Protocol):
    """What a ping's plan reads besides the bidders' gates (``ReadGates``)."""

    def flow_room(
        self, flow_id: str, flow: Flow, source_id: str, variables: Mapping[str, Any]
    ) -> bool: ...

    def flow_duplicate(
        self, flow_id: str, flow: Flow, source_id: str, fields: Mapping[str, Any]
    ) -> bool: ...


@dataclass(slots=True)
class Plan:
    """A ping's gates and steps in ping mode: a failure, or its auctions (step index,
    auction, eligible bidders) in step order."""

    failure: str | None = None
    auctions: list[tuple[int, AuctionStep, list[str]]] = field(default_factory=list)
    has_auction: bool = False
    outcome: str = "failure"  # of a failed plan: ``error`` where a lead would be one


def plan(
    config: LeadflowConfig,
    flow_id: str,
    source_id: str,
    fields: Mapping[str, Any],
    variables: Mapping[str, Any],
    gates: FlowGates,
) -> Plan:
    """The flow's hours, acceptance criteria, duplicates and caps, checked without
    counting; then its filters and auctions in ping mode (recipient steps post, so a
    ping passes them by)."""
    flow = config.flows[flow_id]
    source = flow.sources[source_id]
    if not flow.enabled:
        return Plan("The flow is disabled", outcome="error")  # as /submit answers
    if not hours.is_open(flow.schedule, flow.timezone, gates.now):
        return Plan(hours.FLOW_CLOSED_REASON)
    for criterion in (*flow.acceptance_criteria, *source.acceptance_criteria):
        if not evaluate(criterion.rule_set, variables):
            reason = criterion.reason
            return Plan(render(reason, variables) if reason else "Lead was rejected")
    if gates.flow_duplicate(flow_id, flow, source_id, fields):
        return Plan(duplicates.REASON)
    if not gates.flow_room(flow_id, flow, source_id, variables):
        return Plan(caps.REASON)
    found = Plan(has_auction=any(step.auction is not None for step in flow.steps))
    for index, step in enumerate(flow.steps):
        if step.filter is not None:
            if evaluate(step.filter.rule_set, variables):
                if step.filter.outcome != "success":
                    reason = step.filter.reason
                    found.failure = render(reason, variables) if reason else "Filtered"
                return found
            continue
        if step.auction is None:
            continue
        if step.criteria is not None and not evaluate(step.criteria, variables):
            continue
        bidders = auction.eligible(step.auction, config, variables, fields, gates)
        found.auctions.append((index, step.auction, bidders))
    return found


def take_limits(
    connection: Connection, flow_id: str, flow: Flow, source_id: str, now: datetime
) -> float | None:
    """Count the ping against its flow's and source's ``ping_limits``; over one: nothing
    counted, and the seconds until that limit's window resets."""
    wanted = caps.bounds(
        "ping-flow",
        flow_id,
        [caps.Cap(max=limit.max, per=limit.per) for limit in flow.ping_limits],
        flow.timezone,
        now,
    )
    wanted += caps.bounds(
        "ping-source",
        f"{flow_id}/{source_id}",
        [caps.Cap(max=limit.max, per=limit.per) for limit in flow.sources[source_id].ping_limits],
        flow.timezone,
        now,
    )
    if not wanted:
        return None
    counters = caps.Counters(connection, now)
    counters.lock(wanted)
    taken: list[caps.Bound] = []
    for bound in wanted:
        if not counters.take([bound]):
            counters.give_back(taken)
            counters.write()
            resets = bound.window.resets_at or now + timedelta(days=1)
            return max(1.0, (resets - now).total_seconds())
        taken.append(bound)
    counters.write()
    return None


@dataclass(frozen=True, slots=True)
class StoredPing:
    id: str
    flow_id: str
    source_id: str
    config_version: int
    fields: dict[str, Any]  # as submitted (body and query)
    outcome: str
    reason: str | None
    price: Decimal
    created_at: datetime
    expires_at: datetime
    lead_id: str | None

    def answer(self) -> dict[str, Any]:
        return {
            "outcome": self.outcome,
            "reason": self.reason,
            "price": self.price,
            "ping_id": self.id,
        }


_PING_COLUMNS = [_PINGS.c[name] for name in StoredPing.__dataclass_fields__]


@dataclass(frozen=True, slots=True)
class Answered:
    """A ping answered, to store: the ping, its dedupe key, its time and its bids."""

    ping: StoredPing
    dedupe: str
    ms: int
    bids: Sequence[tuple[int, Bid]]


def store(connection: Connection, answered: Sequence[Answered]) -> None:
    """Pings and their bids: one statement for the pings, one for every bid."""
    if not answered:
        return
    connection.execute(
        insert(_PINGS),
        [
            {
                **{name: getattr(a.ping, name) for name in StoredPing.__dataclass_fields__},
                "dedupe_key": a.dedupe,
                "ms": a.ms,
            }
            for a in answered
        ],
    )
    rows = [
        row
        for a in answered
        for row in _bid_rows(
            a.bids, BidsOf(a.ping.flow_id, a.ping.source_id, a.ping.created_at, a.ping.id)
        )
    ]
    if rows:
        connection.execute(insert(_BIDS), rows)


@dataclass(frozen=True, slots=True)
class BidsOf:
    """What bids belong to: a ping (``ping_id``), or a lead's auction step (``lead_id``
    and the step's ``event_id``)."""

    flow_id: str
    source_id: str
    at: datetime
    ping_id: str | None = None
    lead_id: str | None = None
    event_id: str | None = None


def _bid_rows(bids: Iterable[tuple[int, Bid]], of: BidsOf) -> list[dict[str, Any]]:
    """Rows of bids (step index, bid)."""
    whose = {name: getattr(of, name) for name in BidsOf.__dataclass_fields__}
    return [
        {
            **whose,
            "step": step,
            "recipient_id": bid.recipient_id,
            "outcome": bid.outcome,
            "amount": bid.amount,
            "reference": bid.reference,
            "ms": bid.ms,
            "reason": bid.reason,
            "pinged": bid.pinged,
        }
        for step, bid in bids
    ]


def write_bids(connection: Connection, bids: Sequence[tuple[int, Bid]], of: BidsOf) -> None:
    """The bids of auction steps (step index, bid): of a ping, or of a lead's step."""
    if bids:
        connection.execute(insert(_BIDS), _bid_rows(bids, of))


def recent(connection: Connection, dedupe: str, since: datetime) -> StoredPing | None:
    """The latest ping with this key stored after ``since``."""
    row = connection.execute(
        select(*_PING_COLUMNS)
        .where(_PINGS.c.dedupe_key == dedupe, _PINGS.c.created_at > since)
        .order_by(_PINGS.c.created_at.desc())
        .limit(1)
    ).first()
    return StoredPing(*row) if row is not None else None


def load(connection: Connection, ping_id: str) -> StoredPing | None:
    if not is_id(ping_id):
        return None
    row = connection.execute(select(*_PING_COLUMNS).where(_PINGS.c.id == ping_id)).first()
    return StoredPing(*row) if row is not None else None


def refusal(ping: StoredPing | None, flow_id: str, source_id: str, now: datetime) -> str | None:
    """Why a post may not use this ping: unknown, another source's or expired (``ping
    expired``), posted already (``duplicate``), answered no bid (``no bid``)."""
    if ping is None or (ping.flow_id, ping.source_id) != (flow_id, source_id):
        return EXPIRED_REASON
    expires_at = as_utc(ping.expires_at)
    if expires_at is None or expires_at <= now:
        return EXPIRED_REASON
    if ping.lead_id is not None:
        return DUPLICATE_REASON
    if ping.outcome != "success":
        return auction.NO_BID_REASON
    return None


def claim(connection: Connection, ping_id: str, lead_id: str) -> bool:
    """Take the ping for this lead; False when another post took it first. Its bids
    become the lead's."""
    taken = connection.execute(
        update(_PINGS)
        .where(_PINGS.c.id == ping_id, _PINGS.c.lead_id.is_(None))
        .values(lead_id=lead_id)
    ).rowcount
    if taken != 1:
        return False
    connection.execute(update(_BIDS).where(_BIDS.c.ping_id == ping_id).values(lead_id=lead_id))
    return True


def bids_of_lead(connection: Connection, lead_id: str) -> list[dict[str, Any]]:
    """A lead's bids (of its ping, and of auctions run for it), oldest first."""
    return _bids(connection, _BIDS.c.lead_id == lead_id)


def bids_of_ping(connection: Connection, ping_id: str) -> list[dict[str, Any]]:
    return _bids(connection, _BIDS.c.ping_id == ping_id)


def _bids(connection: Connection, where: Any) -> list[dict[str, Any]]:
    rows = connection.execute(select(_BIDS).where(where).order_by(_BIDS.c.id))
    return [dict(row._mapping) for row in rows]


def step_bids(rows: Sequence[Mapping[str, Any]], step: int) -> list[Bid]:
    """The bids stored for one auction step, in the order they were written."""
    return [
        Bid(
            recipient_id=row["recipient_id"],
            outcome=row["outcome"],
            amount=Decimal(row["amount"]),
            reference=row["reference"],
            ms=row["ms"],
            reason=row["reason"],
            pinged=bool(row["pinged"]),
        )
        for row in rows
        if row["step"] == step
    ]


def ping_report(connection: Connection, ping_id: str) -> dict[str, Any] | None:
    """A ping as ``leadflow pings show`` prints it (and the console shows it)."""
    if not is_id(ping_id):
        return None
    row = connection.execute(select(_PINGS).where(_PINGS.c.id == ping_id)).first()
    if row is None:
        return None
    ping = row._mapping
    return {
        "id": ping["id"],
        "flow_id": ping["flow_id"],
        "source_id": ping["source_id"],
        "outcome": ping["outcome"],
        "reason": ping["reason"],
        "price": cents(ping["price"]),
        "ms": ping["ms"],
        "created_at": iso_utc(ping["created_at"]),
        "expires_at": iso_utc(ping["expires_at"]),
        "lead_id": ping["lead_id"],
        "fields": ping["fields"],
        "bids": [
            {
                "step": bid["step"],
                "recipient": bid["recipient_id"],
                "buyer": bid["recipient_id"],  # SPEC section 12's word for it
                "outcome": bid["outcome"],
                "bid": cents(bid["amount"]),
                "reference": bid["reference"],
                "ms": bid["ms"],
                "reason": bid["reason"],
            }
            for bid in bids_of_ping(connection, ping_id)
        ],
    }
