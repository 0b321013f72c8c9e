"""Caps (SPEC section 13): how many leads (``max``), or how much revenue (``max_revenue``),
an owner takes per minute, hour, day, week, month or in total, in the owner's time zone.

A recipient's caps count sold leads, a flow's or a source's accepted submissions. Each
cap has one counter row per window (``cap_counters``: the cap's key and the window's
start in UTC); a slot is taken by one conditional update whose row count decides
(``used < max``: never a read followed by a write), so however many processes take slots
at once a cap is never exceeded. A transaction first locks every counter it may touch,
in key order (``Counters.lock``), so two transactions never wait on each other in turn.

A recipient's slot is taken when routing hands it the lead and held under the step's
event (``cap_holds``); when the step's result comes back (``settle``) an accepted lead
keeps it (and adds its price to the revenue caps), a rejection or an error gives it back.
A worker that dies holding a delivery holds the slot no longer than the delivery's claim
lease: the copy that takes the delivery up after it settles the same hold.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic_core import PydanticCustomError
from sqlalchemy import Connection, Numeric, Table, bindparam, delete, select, tuple_, update

from shared.db.models import Base
from shared.db.upsert import upsert_returning
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


def window_of(per: str, zone_name: str, at: datetime) -> Window:
    """The window of ``per`` holding the instant ``at``, in the zone ``zone_name``: a day
    runs from local midnight to local midnight (23 or 25 hours across a daylight-saving
    change), a week from Monday, a month from its first day."""
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
_HOLDS: Table = Base.metadata.tables["cap_holds"]
_C = _COUNTERS.c
_TAKE_COUNT = (
    update(_COUNTERS)
    .where(_C.cap_key == bindparam("k"), _C.period == bindparam("p"), _C.used < bindparam("limit"))
    .values(used=_C.used + 1, updated_at=bindparam("now"))
)
_TAKE_REVENUE = (
    update(_COUNTERS)
    .where(
        _C.cap_key == bindparam("k"),
        _C.period == bindparam("p"),
        _C.revenue < bindparam("limit", type_=Numeric(14, 2)),
    )
    .values(used=_C.used + 1, updated_at=bindparam("now"))
)
_GIVE_BACK = (
    update(_COUNTERS)
    .where(_C.cap_key == bindparam("k"), _C.period == bindparam("p"))
    .values(used=_C.used - 1, updated_at=bindparam("now"))
)
_ADD_REVENUE = (
    update(_COUNTERS)
    .where(_C.cap_key == bindparam("k"), _C.period == bindparam("p"))
    .values(revenue=_C.revenue + bindparam("amount"), updated_at=bindparam("now"))
)


@dataclass
class Counters:
    """The cap counters of one transaction: ``lock`` every counter it may touch first (in
    key order), then ``take`` slots; ``holds`` are written with ``write``."""

    connection: Connection
    now: datetime
    _locked: set[tuple[str, str]] = field(default_factory=set)
    _holds: list[dict[str, Any]] = field(default_factory=list)

    def lock(self, counters: Iterable[tuple[str, str]]) -> None:
        """Make sure each counter row exists and hold it for this transaction, all in one
        order (PostgreSQL; SQLite's writer holds the whole database already)."""
        wanted = sorted(set(counters) - self._locked)
        if not wanted:
            return
        upsert_returning(
            self.connection,
            _COUNTERS,
            [
                {
                    "cap_key": k,
                    "period": p,
                    "used": 0,
                    "revenue": Decimal(0),
                    "updated_at": self.now,
                }
                for k, p in wanted
            ],
            key=["cap_key", "period"],
            replace_when=None,
            returning=_C.cap_key,
        )
        if self.connection.dialect.name == "postgresql":
            self.connection.execute(
                select(_C.cap_key)
                .where(tuple_(_C.cap_key, _C.period).in_(wanted))
                .order_by(_C.cap_key, _C.period)
                .with_for_update()
            ).all()
        self._locked.update(wanted)

    def take(self, wanted: Sequence[Bound]) -> bool:
        """A slot of every cap in ``wanted``, or of none: False when one is full."""
        taken: list[Bound] = []
        for bound in wanted:
            assert bound.counter in self._locked, bound.key
            by_count = bound.cap.max is not None
            parameters = {
                "k": bound.key,
                "p": bound.window.period,
                "limit": bound.cap.max if by_count else bound.cap.max_revenue,
                "now": self.now,
            }
            statement = _TAKE_COUNT if by_count else _TAKE_REVENUE
            if self.connection.execute(statement, parameters).rowcount != 1:
                self.give_back(taken)
                return False
            taken.append(bound)
        return True

    def give_back(self, taken: Sequence[Bound]) -> None:
        if taken:
            self.connection.execute(
                _GIVE_BACK,
                [{"k": b.key, "p": b.window.period, "now": self.now} for b in taken],
            )

    def hold(self, event_id: str, taken: Sequence[Bound]) -> None:
        """Keep the slots ``taken`` for a recipient step until its result (``settle``)."""
        self._holds.extend(
            {"event_id": event_id, "cap_key": b.key, "period": b.window.period} for b in taken
        )

    def write(self) -> None:
        if self._holds:
            self.connection.execute(_HOLDS.insert(), self._holds)
            self._holds.clear()


def holds_of(connection: Connection, event_ids: Sequence[str]) -> list[Any]:
    """The slots held for these recipient steps: (event_id, cap_key, period) rows."""
    if not event_ids:
        return []
    return list(
        connection.execute(
            select(_HOLDS.c.event_id, _HOLDS.c.cap_key, _HOLDS.c.period).where(
                _HOLDS.c.event_id.in_(event_ids)
            )
        )
    )


def settle(
    counters: Counters, holds: Sequence[Any], results: Mapping[str, tuple[str, float]]
) -> None:
    """The steps' results are known (``results``: event id -> (outcome, price)): an
    accepted lead keeps its slots and adds its price to the revenue, any other outcome
    gives them back. The counters must be locked (``Counters.lock``)."""
    settled = [h for h in holds if h.event_id in results]
    if not settled:
        return
    back = [h for h in settled if results[h.event_id][0] != "success"]
    kept = [h for h in settled if results[h.event_id][0] == "success" and results[h.event_id][1]]
    connection = counters.connection
    if back:
        connection.execute(
            _GIVE_BACK, [{"k": h.cap_key, "p": h.period, "now": counters.now} for h in back]
        )
    if kept:
        connection.execute(
            _ADD_REVENUE,
            [
                {
                    "k": h.cap_key,
                    "p": h.period,
                    "amount": Decimal(str(results[h.event_id][1])),
                    "now": counters.now,
                }
                for h in kept
            ],
        )
    connection.execute(delete(_HOLDS).where(_HOLDS.c.event_id.in_({h.event_id for h in settled})))


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
                "used": used if by_count else str(revenue),
                "max": bound.cap.max if by_count else str(bound.cap.max_revenue),
                "resets_at": bound.window.resets_at.isoformat() if bound.window.resets_at else None,
                "filtered": bound.cap.rule_set is not None,
            }
        )
    return rows
