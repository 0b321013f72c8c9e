"""Hours of operation (SPEC section 13): a weekly schedule and closed dates, in the
owner's time zone. Pure: each decision takes the instant it is asked about.

```yaml
schedule:
  mon-fri: ["09:00-17:00"]
  sat: ["10:00-14:00"]
  closed: ["2026-12-25", "2026-12-31..2027-01-01"]
```

A day not named is closed; a schedule that is absent means always open. Hours are local
wall-clock times (``24:00`` ends a day): across a daylight-saving change a day keeps its
hours, so 09:00-17:00 is eight hours of local time on either side of it.
"""

from __future__ import annotations

import itertools
import re
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, model_validator
from pydantic_core import PydanticCustomError

CLOSED_REASON = "Outside hours of operation"
FLOW_CLOSED_REASON = "Submission Timestamp must be within hours of operation"
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
#: How far ahead the next opening is looked for (a schedule closed longer never opens).
HORIZON_DAYS = 400
_SPAN = re.compile(r"^(\d\d):(\d\d)-(\d\d):(\d\d)$")

Span = tuple[int, int]  # minutes from local midnight: [start, end)


def zone(name: str) -> ZoneInfo:
    """The time zone ``name``; a ``ValueError`` naming it when it is unknown."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone '{name}'") from None


def check_zone(name: str) -> str:
    try:
        zone(name)
    except ValueError as exc:
        raise PydanticCustomError("zone", str(exc)) from None
    return name


def _days(key: str) -> list[int]:
    first, _, last = key.partition("-")
    if first not in DAYS or (last and last not in DAYS):
        raise PydanticCustomError(
            "day", "unknown day '{key}' (use mon..sun, or a range like mon-fri)", {"key": key}
        )
    start, end = DAYS.index(first), DAYS.index(last or first)
    if end < start:
        raise PydanticCustomError("day", "day range '{key}' runs backwards", {"key": key})
    return list(range(start, end + 1))


def _span(text: Any) -> Span:
    match = _SPAN.match(text) if isinstance(text, str) else None
    if match is None:
        raise PydanticCustomError("hours", "hours '{t}' are not HH:MM-HH:MM", {"t": text})
    h1, m1, h2, m2 = (int(g) for g in match.groups())
    start, end = h1 * 60 + m1, h2 * 60 + m2
    if h1 > 23 or m1 > 59 or m2 > 59 or end > 24 * 60:
        raise PydanticCustomError("hours", "hours '{t}' are not times of a day", {"t": text})
    if end <= start:
        raise PydanticCustomError("hours", "hours '{t}' end before they start", {"t": text})
    return start, end


def _dates(text: Any) -> tuple[date, date]:
    if isinstance(text, date):  # written unquoted: YAML read it as a date already
        return text, text
    if not isinstance(text, str):
        raise PydanticCustomError("closed", "closed dates are 'YYYY-MM-DD' or 'A..B'", {})
    first, _, last = text.partition("..")
    try:
        start, end = date.fromisoformat(first), date.fromisoformat(last or first)
    except ValueError:
        raise PydanticCustomError(
            "closed",
            "'{t}' is not a date or a range of dates (YYYY-MM-DD..YYYY-MM-DD)",
            {"t": text},
        ) from None
    if end < start:
        raise PydanticCustomError("closed", "dates '{t}' run backwards", {"t": text})
    return start, end


class Schedule(BaseModel):
    """A validated weekly schedule: the open spans of each weekday (Monday first) and the
    closed date ranges."""

    model_config = ConfigDict(frozen=True)

    week: tuple[tuple[Span, ...], ...] = ((),) * 7
    closed: tuple[tuple[date, date], ...] = ()

    @model_validator(mode="before")
    @classmethod
    def _parse(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            raise PydanticCustomError("schedule", "a schedule maps days to lists of hours", {})
        if "week" in data:  # already parsed (a model's own dump)
            return data
        # no day listed (only ``closed`` dates, or nothing): open all day, every day
        listed = any(key != "closed" for key in data)
        week: list[list[Span]] = [[] if listed else [(0, 24 * 60)] for _ in DAYS]
        closed: list[tuple[date, date]] = []
        for key, value in data.items():
            try:
                if not isinstance(value, list):
                    raise PydanticCustomError("schedule", "needs a list", {})
                if key == "closed":
                    closed.extend(_dates(v) for v in value)
                    continue
                spans = [_span(v) for v in value]
                for day in _days(str(key)):
                    week[day].extend(spans)
            except PydanticCustomError as exc:
                raise PydanticCustomError(
                    "schedule", "{key}: {problem}", {"key": key, "problem": exc.message()}
                ) from None
        for day, spans in enumerate(week):
            spans.sort()
            for (_, end), (start, _) in itertools.pairwise(spans):
                if start < end:
                    raise PydanticCustomError("hours", "hours overlap on {day}", {"day": DAYS[day]})
        return {"week": tuple(tuple(s) for s in week), "closed": tuple(closed)}

    def is_closed_on(self, day: date) -> bool:
        return any(start <= day <= end for start, end in self.closed)


def is_open(schedule: Schedule | None, zone_name: str, at: datetime) -> bool:
    """Whether the owner is open at the instant ``at``."""
    if schedule is None:
        return True
    local = at.astimezone(zone(zone_name))
    if schedule.is_closed_on(local.date()):
        return False
    minute = local.hour * 60 + local.minute + local.second / 60
    return any(start <= minute < end for start, end in schedule.week[local.weekday()])


def next_opening(schedule: Schedule | None, zone_name: str, at: datetime) -> datetime | None:
    """The first instant, from ``at`` on, at which the owner is open (``at`` itself when
    open); None when it never opens within ``HORIZON_DAYS``."""
    if is_open(schedule, zone_name, at):
        return at
    assert schedule is not None
    tz = zone(zone_name)
    today = at.astimezone(tz).date()
    for offset in range(HORIZON_DAYS):
        day = today + timedelta(days=offset)
        if schedule.is_closed_on(day):
            continue
        for start, _ in schedule.week[day.weekday()]:
            opening = _instant(day, start, tz)
            if opening > at:
                return opening
    return None


def _instant(day: date, minute: int, tz: ZoneInfo) -> datetime:
    """The first instant at which the local time on ``day`` reaches ``minute``: that wall
    time (its first occurrence when the clocks fall back), or, when a spring-forward gap
    skips it, the end of the gap (when the clocks jump past it)."""
    wall = datetime.combine(day, time(minute // 60, minute % 60))
    first = wall.replace(tzinfo=tz).astimezone(UTC)
    if first.astimezone(tz).replace(tzinfo=None) == wall:
        return first
    # skipped: the gap ends between the wall time read after it and read before it
    low = wall.replace(tzinfo=tz, fold=1).astimezone(UTC)
    high = first
    while high - low > timedelta(seconds=1):
        middle = low + (high - low) / 2
        if middle.astimezone(tz).replace(tzinfo=None) >= wall:
            high = middle
        else:
            low = middle
    # clocks change on a whole second: the first whole second after ``low``
    return low.replace(microsecond=0) + timedelta(seconds=1)
