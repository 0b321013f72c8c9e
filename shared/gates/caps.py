"""Caps (SPEC section 13): how many leads (``max``), or how much revenue (``max_revenue``),
an owner takes per minute, hour, day, week, month or in total, in the owner's time zone.

A recipient's caps count sold leads, a flow's or a source's accepted submissions. Each
cap has one counter row per window (``cap_counters``: the cap's key and the window's
start in UTC); a slot is taken by one conditional update whose row count decides
(``used < max``: never a read followed by a write), so however many processes take slots
at once a cap is never exceeded. A transaction first locks every counter it may touch,
in key order (``Counters.lock``), so two transactions never wait on each other in turn.

A recipient's slot is taken when routing hands it the lead and held by the step's
delivery (``deliveries.cap_holds``, written with the delivery: no row of its own); when
routing moves the lead on from the step (``settle``, once) an accepted lead keeps it
(and adds its price to the revenue caps), a rejection or an error gives it back. A
worker that dies holding a delivery holds the slot no longer than the delivery's claim
lease: the copy that takes the delivery up after it settles the same hold.

A revenue cap's slot counts the revenue the lead is expected to bring as it is taken (the
recipient's fixed ``price``, or the bid an auction posts to; ``Bound.expected``), so leads
in flight count too and concurrent deliveries cannot pass the cap together; the sale
settles the difference to its actual price, a rejection takes it back. A price known only
from the buyer's answer (``price_path`` without ``price``) counts once the sale is made.

Longer than 300 lines on purpose: a cap's model, its windows, the counters that take
slots, the holds that settle them and the report all speak of the same counter keys
(``Bound.counter``); apart, each would have to rebuild them.
"""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic_core import PydanticCustomError
from sqlalchemy import Connection, Numeric, Table, bindparam, select, text, tuple_, update
from sqlalchemy.dialects import postgresql, sqlite

from shared.db.models import Base
from shared.gates.hours import zone
from shared.rules import RuleSet, evaluate

REASON = "Cap reached"
Per = Literal["minute", "hour", "day", "week", "month", "total"]
TOTAL = "total"


class Cap(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    max: int | None = Field(default=None, ge=0)
    max_revenue: Decimal | None = Field(default=None, ge=0)
    per: Per
    rule_set: RuleSet | None = None

    @model_validator(mode="after")
    def _one_limit(self) -> Cap:
        if (self.max is None) == (self.max_revenue is None):
            raise PydanticCustomError("cap", "a cap needs exactly one of 'max' or 'max_revenue'")
        return self

    @property
    def limit(self) -> Decimal:
        return Decimal(self.max) if self.max is not None else Decimal(self.max_revenue or 0)

    def counts(self, variables: Mapping[str, Any]) -> bool:
        """Whether this lead is one the cap counts (and limits)."""
        return self.rule_set is None or evaluate(self.rule_set, variables)


@dataclass(frozen=True, slots=True)
class Window:
    """The window a cap counts in at some instant: its start (the counter's ``period``,
    ``total`` for a cap without one) and when the next one starts (None: never)."""

    period: str
    start: datetime | None
    resets_at: datetime | None


def _local_midnight(day: date, tz: Any) -> datetime:
    return datetime.combine(day, time(0), tz).astimezone(UTC)


@functools.lru_cache(maxsize=1024)
def window_of(per: str, zone_name: str, at: datetime) -> Window:
    """The window of ``per`` holding the instant ``at``, in the zone ``zone_name``: a day
    runs from local midnight to local midnight (23 or 25 hours across a daylight-saving
    change), a week from Monday, a month from its first day. (Cached: a transaction asks
    for the same few windows at one instant for each of its leads.)"""
    if per == TOTAL:
        return Window(TOTAL, None, None)
    tz = zone(zone_name)
    local = at.astimezone(tz)
    if per in ("minute", "hour"):
        start_local = local.replace(second=0, microsecond=0)
        if per == "hour":
            start_local = start_local.replace(minute=0)
        start = start_local.astimezone(UTC)
        resets = start + (timedelta(minutes=1) if per == "minute" else timedelta(hours=1))
    else:
        day = local.date()
        if per == "day":
            first, after = day, day + timedelta(days=1)
        elif per == "week":
            first = day - timedelta(days=day.weekday())
            after = first + timedelta(days=7)
        else:
            first = day.replace(day=1)
            after = (first + timedelta(days=32)).replace(day=1)
        start, resets = _local_midnight(first, tz), _local_midnight(after, tz)
    return Window(start.strftime("%Y-%m-%dT%H:%M:%SZ"), start, resets)


@dataclass(frozen=True, slots=True)
class Bound:
    """One cap of one owner, in the window it counts in now."""

    owner_type: str  # recipient | flow | source
    owner: str  # the recipient's or flow's id; a source's "flow/source"
    index: int
    cap: Cap
    window: Window
    expected: Decimal = Decimal(0)  # a revenue cap's slot: the revenue it counts when taken

    @property
    def key(self) -> str:
        return f"{self.owner_type}:{self.owner}#{self.index}/{self.cap.per}"

    @property
    def counter(self) -> tuple[str, str]:
        return self.key, self.window.period


def bounds(
    owner_type: str, owner: str, caps: Sequence[Cap], zone_name: str, at: datetime
) -> list[Bound]:
    return [
        Bound(owner_type, owner, i, cap, window_of(cap.per, zone_name, at))
        for i, cap in enumerate(caps)
    ]


_COUNTERS: Table = Base.metadata.tables["cap_counters"]
_DELIVERIES: Table = Base.metadata.tables["deliveries"]
_C = _COUNTERS.c
_TAKE_COUNT = (
    update(_COUNTERS)
    .where(_C.cap_key == bindparam("k"), _C.period == bindparam("p"), _C.used < bindparam("limit"))
    .values(used=_C.used + bindparam("n"), updated_at=bindparam("now"))
)
_TAKE_REVENUE = (
    update(_COUNTERS)
    .where(
        _C.cap_key == bindparam("k"),
        _C.period == bindparam("p"),
        _C.revenue < bindparam("limit", type_=Numeric(14, 2)),
    )
    .values(
        used=_C.used + bindparam("n"),
        revenue=_C.revenue + bindparam("amount", type_=Numeric(14, 2)),
        updated_at=bindparam("now"),
    )
)
# PostgreSQL: n slots of many count caps in one statement; the caps it returns had room
# for them. (A revenue cap's slots are taken one by one: each counts its own amount.)
_RESERVE = text(
    "UPDATE cap_counters AS c SET used = c.used + v.n, updated_at = :now "
    "FROM unnest(CAST(:keys AS VARCHAR[]), CAST(:periods AS VARCHAR[]), CAST(:ns AS INTEGER[]), "
    "CAST(:max_used AS BIGINT[])) AS v(cap_key, period, n, max_used) "
    "WHERE c.cap_key = v.cap_key AND c.period = v.period AND c.used + v.n <= v.max_used "
    "RETURNING c.cap_key, c.period"
)
_GIVE_BACK = (  # n slots, and the revenue they counted when taken
    update(_COUNTERS)
    .where(_C.cap_key == bindparam("k"), _C.period == bindparam("p"))
    .values(
        used=_C.used - bindparam("n"),
        revenue=_C.revenue - bindparam("amount", type_=Numeric(14, 2)),
        updated_at=bindparam("now"),
    )
)
_ADD_REVENUE = (
    update(_COUNTERS)
    .where(_C.cap_key == bindparam("k"), _C.period == bindparam("p"))
    .values(revenue=_C.revenue + bindparam("amount"), updated_at=bindparam("now"))
)


@dataclass
class Counters:
    """The cap counters of one transaction: ``lock`` every counter it may touch first (in
    key order, with how many slots the transaction may take of each), then ``take``
    slots; ``write`` before the commit.

    The first slot taken of a counter reserves, by one conditional update, as many as the
    transaction may take (``used + n <= max``); the next ones come out of that reservation
    without a statement, and ``write`` gives back what was not used. When the counter has
    fewer slots left, each slot is one conditional update of its own. Either way the
    update's row count decides, and the row stays locked until the commit."""

    connection: Connection
    now: datetime
    _demand: dict[tuple[str, str], int] = field(default_factory=dict)
    _reserved: dict[tuple[str, str], int] = field(default_factory=dict)  # left to hand out
    _locked: set[tuple[str, str]] = field(default_factory=set)

    def lock(self, bounds: Iterable[Bound], settling: Iterable[tuple[str, str]] = ()) -> None:
        """Make sure each counter row exists and hold it for this transaction, all in one
        order, by one statement (PostgreSQL; SQLite's writer holds the whole database
        already); then reserve, by one more, the slots the transaction may take of each
        (a cap named n times: n). ``settling``: counters changed by ``settle``."""
        bounds = list(bounds)
        demand = Counter(b.counter for b in bounds)
        wanted = sorted({*demand, *settling} - self._locked)
        if wanted:
            self._locked.update(wanted)
            rows = [
                {
                    "cap_key": k,
                    "period": p,
                    "used": 0,
                    "revenue": Decimal(0),
                    "updated_at": self.now,
                }
                for k, p in wanted
            ]
            statement: Any
            if self.connection.dialect.name == "postgresql":
                # an upsert that touches every row it meets locks it, in the rows' order
                insert = postgresql.insert(_COUNTERS).values(rows)
                statement = insert.on_conflict_do_update(
                    index_elements=["cap_key", "period"],
                    set_={"updated_at": insert.excluded.updated_at},
                )
            else:
                statement = sqlite.insert(_COUNTERS).values(rows).on_conflict_do_nothing()
            self.connection.execute(statement)
        first = {}
        for bound in bounds:
            if bound.counter not in self._demand and bound.counter not in first:
                first[bound.counter] = bound
        for counter, n in demand.items():
            self._demand[counter] = self._demand.get(counter, 0) + n
        self._reserve(
            [
                (b, demand[c])
                for c, b in sorted(first.items())
                if demand[c] > 1 and b.cap.max is not None
            ]
        )

    def _reserve(self, wanted: list[tuple[Bound, int]]) -> None:
        """Reserve n slots of each cap in one statement where each has room for them."""
        if not wanted:
            return
        if self.connection.dialect.name != "postgresql":
            for bound, n in wanted:
                if self._update(bound, n):
                    self._reserved[bound.counter] = n
            return
        reserved = self.connection.execute(
            _RESERVE,
            {
                "keys": [b.key for b, _ in wanted],
                "periods": [b.window.period for b, _ in wanted],
                "ns": [n for _, n in wanted],
                "max_used": [b.cap.max for b, _ in wanted],
                "now": self.now,
            },
        )
        ns = {b.counter: n for b, n in wanted}
        for key, period in reserved:
            self._reserved[(key, period)] = ns[(key, period)]

    def __contains__(self, counter: object) -> bool:
        return counter in self._demand

    def take(self, wanted: Sequence[Bound]) -> bool:
        """A slot of every cap in ``wanted``, or of none: False when one is full."""
        taken: list[Bound] = []
        for bound in wanted:
            if not self._take_one(bound):
                self.give_back(taken)
                return False
            taken.append(bound)
        return True

    def _take_one(self, bound: Bound) -> bool:
        counter = bound.counter
        assert counter in self._demand, bound.key
        if counter in self._reserved:
            if self._reserved[counter] == 0:
                return False  # (more takes than were locked for: cannot happen)
            self._reserved[counter] -= 1
            return True
        return self._update(bound, 1)

    def _update(self, bound: Bound, n: int) -> bool:
        by_count = bound.cap.max is not None
        parameters = {
            "k": bound.key,
            "p": bound.window.period,
            "n": n,
            "limit": (bound.cap.max - n + 1)
            if bound.cap.max is not None
            else bound.cap.max_revenue,
            "amount": bound.expected * n,
            "now": self.now,
        }
        statement = _TAKE_COUNT if by_count else _TAKE_REVENUE
        return bool(self.connection.execute(statement, parameters).rowcount == 1)

    def give_back(self, taken: Sequence[Bound]) -> None:
        direct = []
        for bound in taken:
            if bound.counter in self._reserved:
                self._reserved[bound.counter] += 1
            else:
                direct.append(
                    {
                        "k": bound.key,
                        "p": bound.window.period,
                        "n": 1,
                        "amount": bound.expected,
                        "now": self.now,
                    }
                )
        if direct:
            self.connection.execute(_GIVE_BACK, direct)

    def add_revenue(self, taken: Sequence[Bound], amount: Decimal) -> None:
        """A sale kept as its slots are taken (a lead left pending for a batch or a
        download: nothing will answer): its revenue counts at once (what its slot did not
        count already). A revenue cap it fills refuses the next slot by itself: those are
        taken one by one, each by a conditional update that reads the sum."""
        added = [
            {
                "k": bound.key,
                "p": bound.window.period,
                "amount": amount - bound.expected,
                "now": self.now,
            }
            for bound in taken
            if amount != bound.expected
        ]
        if added:
            self.connection.execute(_ADD_REVENUE, added)

    def write(self) -> None:
        """Give back what was reserved and not taken."""
        unused = [
            {"k": k, "p": p, "n": n, "amount": 0, "now": self.now}
            for (k, p), n in self._reserved.items()
            if n > 0
        ]
        if unused:
            self.connection.execute(_GIVE_BACK, unused)
        self._reserved = {c: 0 for c in self._reserved}


@dataclass(frozen=True, slots=True)
class Hold:
    """A cap slot a delivery holds until its result (``deliveries.cap_holds``)."""

    event_id: str
    cap_key: str
    period: str
    expected: Decimal = Decimal(0)  # the revenue it counted when taken

    @classmethod
    def of(cls, event_id: str, line: str) -> Hold:
        key, period, *expected = line.split("\t")
        return cls(event_id, key, period, Decimal(expected[0]) if expected else Decimal(0))


def holding(taken: Sequence[Bound]) -> str | None:
    """The ``deliveries.cap_holds`` of a delivery that took these slots (a revenue cap's
    with the revenue it counted when taken)."""
    return (
        "\n".join(
            f"{b.key}\t{b.window.period}" + (f"\t{b.expected}" if b.expected else "") for b in taken
        )
        or None
    )


_HOLDS_OF = select(_DELIVERIES.c.event_id, _DELIVERIES.c.cap_holds).where(
    _DELIVERIES.c.event_id.in_(bindparam("event_ids", expanding=True)),
    _DELIVERIES.c.cap_holds.is_not(None),
)


def holds_of(connection: Connection, event_ids: Sequence[str]) -> list[Hold]:
    """The cap slots the deliveries of these steps hold."""
    if not event_ids:
        return []
    return [
        Hold.of(row.event_id, line)
        for row in connection.execute(_HOLDS_OF, {"event_ids": list(event_ids)})
        for line in row.cap_holds.splitlines()
    ]


def settle(
    counters: Counters, holds: Sequence[Hold], results: Mapping[str, tuple[str, Decimal]]
) -> None:
    """The steps' results are known (``results``: event id -> (outcome, price); each
    settled once, when the lead moves on from its step): an accepted lead keeps its
    slots and its price replaces the revenue they counted when taken, any other outcome
    gives them back with it. The counters that change must be locked (``to_lock``)."""
    settled = [h for h in holds if h.event_id in results]
    if not settled:
        return
    back = [h for h in settled if results[h.event_id][0] != "success"]
    kept = [h for h in settled if _sold_for_other(h, results)]
    connection = counters.connection
    if back:
        connection.execute(
            _GIVE_BACK,
            [
                {"k": h.cap_key, "p": h.period, "n": 1, "amount": h.expected, "now": counters.now}
                for h in back
            ],
        )
    if kept:
        connection.execute(
            _ADD_REVENUE,
            [
                {
                    "k": h.cap_key,
                    "p": h.period,
                    "amount": Decimal(str(results[h.event_id][1])) - h.expected,
                    "now": counters.now,
                }
                for h in kept
            ],
        )


def _sold_for_other(hold: Hold, results: Mapping[str, tuple[str, Decimal]]) -> bool:
    """A sale whose price is not the revenue its slot counted when taken."""
    outcome, price = results[hold.event_id]
    return outcome == "success" and Decimal(str(price or 0)) != hold.expected


def release(
    connection: Connection, holds: Sequence[Hold], owed: Mapping[str, Decimal], now: datetime
) -> None:
    """Deliveries that kept their slots at once (left pending) end unsold after all (a
    batch given up): each slot is given back with the revenue it counted (``owed``: by
    event id), counters in key order."""
    ordered = sorted(holds, key=lambda h: (h.cap_key, h.period))
    if ordered:
        connection.execute(
            _GIVE_BACK,
            [{"k": h.cap_key, "p": h.period, "n": 1, "amount": 0, "now": now} for h in ordered],
        )
    refunds = [
        {"k": h.cap_key, "p": h.period, "amount": -owed[h.event_id], "now": now}
        for h in ordered
        if owed.get(h.event_id)
    ]
    if refunds:
        connection.execute(_ADD_REVENUE, refunds)


def to_lock(
    holds: Sequence[Any], results: Mapping[str, tuple[str, Decimal]]
) -> list[tuple[str, str]]:
    """The counters ``settle`` changes: a sale adds its price, anything else gives back
    (a sale at no price changes nothing, and locks nothing)."""
    return [
        (h.cap_key, h.period)
        for h in holds
        if h.event_id in results
        and (results[h.event_id][0] != "success" or _sold_for_other(h, results))
    ]


def counter_values(
    connection: Connection, counters: Sequence[tuple[str, str]]
) -> dict[tuple[str, str], tuple[int, Decimal]]:
    """(used, revenue) of each counter that exists."""
    if not counters:
        return {}
    rows = connection.execute(
        select(_C.cap_key, _C.period, _C.used, _C.revenue).where(
            tuple_(_C.cap_key, _C.period).in_(list(counters))
        )
    )
    return {(r.cap_key, r.period): (r.used, Decimal(r.revenue)) for r in rows}


def every_bound(config: Any, at: datetime) -> list[Bound]:
    """Every cap of a configuration (``LeadflowConfig``) in its window at ``at``."""
    found: list[Bound] = []
    for recipient_id, recipient in config.recipients.items():
        found += bounds("recipient", recipient_id, recipient.caps, recipient.timezone, at)
    for flow_id, flow in config.flows.items():
        found += bounds("flow", flow_id, flow.caps, flow.timezone, at)
        for source_id, source in flow.sources.items():
            found += bounds("source", f"{flow_id}/{source_id}", source.caps, flow.timezone, at)
    return found


def report(connection: Connection, config: Any, at: datetime) -> list[dict[str, Any]]:
    """Each cap: owner, window (its ``per``), used, max and when it resets (``leadflow
    caps``, the console). A revenue cap's ``used`` and ``max`` are amounts."""
    found = every_bound(config, at)
    values = counter_values(connection, [b.counter for b in found])
    rows = []
    for bound in found:
        used, revenue = values.get(bound.counter, (0, Decimal(0)))
        by_count = bound.cap.max is not None
        rows.append(
            {
                "owner": bound.owner,
                "owner_type": bound.owner_type,
                "window": bound.cap.per,
                "kind": "count" if by_count else "revenue",
                "used": used if by_count else f"{revenue:.2f}",
                "max": bound.cap.max if by_count else f"{bound.cap.max_revenue:.2f}",
                "resets_at": bound.window.resets_at.isoformat() if bound.window.resets_at else None,
                "filtered": bound.cap.rule_set is not None,
            }
        )
    return rows
