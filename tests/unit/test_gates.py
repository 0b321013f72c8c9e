"""Hours of operation and cap windows (SPEC section 13) as pure decisions: each takes the
instant it is asked about, so a frozen clock is an argument."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from shared.errors import ConfigError
from shared.flowconfig import load_config_text
from shared.gates.caps import window_of
from shared.gates.hours import Schedule, is_open, next_opening

NY = "America/New_York"


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)  # type: ignore[misc, arg-type]


def test_a_day_cap_resets_at_the_recipients_local_midnight() -> None:
    # given 23:30 on 4 December in New York (04:30 UTC on the 5th)
    at = utc(2026, 12, 5, 4, 30)

    # when its day window is asked for
    window = window_of("day", NY, at)

    # then it started at New York's midnight and resets at the next one, not at UTC's
    assert window.start == utc(2026, 12, 4, 5, 0)
    assert window.resets_at == utc(2026, 12, 5, 5, 0)
    # and half an hour later, a new window (a new counter) has begun
    later = window_of("day", NY, at + timedelta(minutes=31))
    assert later.period != window.period
    assert later.start == window.resets_at


def test_a_day_across_a_daylight_saving_change_is_23_or_25_hours_long() -> None:
    spring = window_of("day", NY, utc(2026, 3, 8, 12))  # clocks go forward at 02:00
    autumn = window_of("day", NY, utc(2026, 11, 1, 12))  # clocks go back at 02:00
    assert spring.resets_at is not None and spring.start is not None
    assert autumn.resets_at is not None and autumn.start is not None
    assert spring.resets_at - spring.start == timedelta(hours=23)
    assert autumn.resets_at - autumn.start == timedelta(hours=25)
    # the day after each starts at local midnight with the new offset
    assert window_of("day", NY, utc(2026, 3, 9, 12)).start == utc(2026, 3, 9, 4)
    assert window_of("day", NY, utc(2026, 11, 2, 12)).start == utc(2026, 11, 2, 5)


def test_the_hour_repeated_when_clocks_go_back_is_two_windows() -> None:
    first = window_of("hour", NY, utc(2026, 11, 1, 5, 30))  # 01:30 EDT
    second = window_of("hour", NY, utc(2026, 11, 1, 6, 30))  # 01:30 EST
    assert first.period != second.period
    assert first.resets_at == second.start == utc(2026, 11, 1, 6)


@pytest.mark.parametrize(
    ("per", "start", "resets_at"),
    [
        ("minute", utc(2026, 12, 5, 4, 30), utc(2026, 12, 5, 4, 31)),
        ("hour", utc(2026, 12, 5, 4, 0), utc(2026, 12, 5, 5, 0)),
        ("week", utc(2026, 11, 30, 5), utc(2026, 12, 7, 5)),  # from Monday
        ("month", utc(2026, 12, 1, 5), utc(2027, 1, 1, 5)),
    ],
)
def test_windows_start_where_the_owner_counts_them(
    per: str, start: datetime, resets_at: datetime
) -> None:
    window = window_of(per, NY, utc(2026, 12, 5, 4, 30, 15))
    assert (window.start, window.resets_at) == (start, resets_at)


def test_a_total_cap_never_resets() -> None:
    window = window_of("total", NY, utc(2026, 12, 5))
    assert (window.period, window.resets_at) == ("total", None)


SCHEDULE = Schedule.model_validate(
    {
        "mon-fri": ["09:00-12:00", "13:00-17:00"],
        "sat": ["10:00-14:00"],
        "closed": ["2026-12-25", "2026-12-31..2027-01-01"],
    }
)


@pytest.mark.parametrize(
    ("local", "expected"),
    [
        ((2026, 12, 7, 9, 0), True),  # Monday at opening
        ((2026, 12, 7, 8, 59), False),
        ((2026, 12, 7, 12, 30), False),  # lunch
        ((2026, 12, 7, 16, 59), True),
        ((2026, 12, 7, 17, 0), False),  # closing is exclusive
        ((2026, 12, 5, 11, 0), True),  # Saturday
        ((2026, 12, 6, 11, 0), False),  # Sunday is not named: closed
        ((2026, 12, 25, 10, 0), False),  # a closed date (a Friday)
        ((2027, 1, 1, 10, 0), False),  # the last day of a closed range
    ],
)
def test_a_schedule_is_open_in_its_hours_in_the_owners_zone(
    local: tuple[int, ...], expected: bool
) -> None:
    from zoneinfo import ZoneInfo

    at = datetime(*local, tzinfo=ZoneInfo(NY)).astimezone(UTC)  # type: ignore[misc, arg-type]
    assert is_open(SCHEDULE, NY, at) is expected


def test_the_next_opening_skips_nights_weekends_and_closed_dates() -> None:
    # Friday 24 December 2026 after closing: Christmas closed, then the weekend's Saturday
    assert next_opening(SCHEDULE, NY, utc(2026, 12, 24, 23)) == utc(2026, 12, 26, 15)
    # Monday lunch: the afternoon
    assert next_opening(SCHEDULE, NY, utc(2026, 12, 7, 17, 30)) == utc(2026, 12, 7, 18)
    # open now: now
    assert next_opening(SCHEDULE, NY, utc(2026, 12, 7, 15)) == utc(2026, 12, 7, 15)
    # no schedule: always open
    assert is_open(None, NY, utc(2026, 12, 6, 3))


def test_an_opening_after_a_daylight_saving_change_keeps_its_local_hour() -> None:
    # Saturday 7 March 2026 after closing: Monday 09:00 is after the change (EDT, UTC-4)
    assert next_opening(SCHEDULE, NY, utc(2026, 3, 7, 20)) == utc(2026, 3, 9, 13)


def test_hours_that_start_in_the_spring_forward_gap_open_when_the_gap_ends() -> None:
    # given Sunday hours from 02:30, a time New York skips on 8 March 2026 (02:00 -> 03:00)
    early = Schedule.model_validate({"sun": ["02:30-04:00"]})

    # then the next opening is when the clocks jump (07:00 UTC), when it is open already
    assert next_opening(early, NY, utc(2026, 3, 8, 6, 59)) == utc(2026, 3, 8, 7)
    assert is_open(early, NY, utc(2026, 3, 8, 7))


def test_hours_in_the_hour_the_clocks_repeat_open_at_its_first_occurrence() -> None:
    # 1 November 2026: 01:00-02:00 comes twice in New York; 01:30 first is 05:30 UTC
    repeated = Schedule.model_validate({"sun": ["01:30-04:00"]})
    assert next_opening(repeated, NY, utc(2026, 11, 1, 4)) == utc(2026, 11, 1, 5, 30)


def test_closed_dates_written_without_quotes_are_read_as_dates() -> None:
    from datetime import date

    schedule = Schedule.model_validate({"mon-sun": ["00:00-24:00"], "closed": [date(2026, 12, 25)]})
    assert not is_open(schedule, NY, utc(2026, 12, 25, 17))


def test_a_schedule_of_closed_dates_alone_is_open_all_day_on_every_other_day() -> None:
    # given a schedule that lists only the dates it is closed
    holidays = Schedule.model_validate({"closed": ["2026-12-25"]})

    # then it is closed on those, open at any hour of any other day
    assert not is_open(holidays, NY, utc(2026, 12, 25, 17))
    assert is_open(holidays, NY, utc(2026, 12, 26, 8))  # a Saturday, 03:00 in New York
    assert next_opening(holidays, NY, utc(2026, 12, 25, 17)) == utc(2026, 12, 26, 5)


def test_a_schedule_that_never_opens_has_no_next_opening() -> None:
    never = Schedule.model_validate({"closed": ["2026-01-01..2030-01-01"]})
    assert next_opening(never, NY, utc(2026, 12, 5)) is None


BAD = """
recipients:
  acme:
    http: {url: "http://x"}
    timezone: Mars/Olympus
    caps: [{max: 10, per: fortnight}, {max: 1, max_revenue: 2, per: day}]
    schedule: {mon-fri: ["09:00-17:00", "16:00-18:00"], sat: ["14:00-10:00"]}
    when_closed: wait
flows:
  auto:
    timezone: Nowhere
    schedule: {funday: ["10:00-11:00"], closed: ["2026-02-30"]}
    sources: {web: {caps: [{max: -1, per: day}]}}
    steps: [{recipient: acme}]
"""


def test_bad_caps_schedules_and_zones_are_refused_with_their_paths() -> None:
    with pytest.raises(ConfigError) as refused:
        load_config_text(BAD, {})
    text = str(refused.value)
    for expected in (
        "recipients.acme.timezone: unknown time zone 'Mars/Olympus'",
        "recipients.acme.caps[0].per:",
        "recipients.acme.caps[1]: a cap needs exactly one of 'max' or 'max_revenue'",
        "recipients.acme.schedule: ",
        "recipients.acme.when_closed:",
        "flows.auto.timezone: unknown time zone 'Nowhere'",
        "flows.auto.schedule: funday: unknown day",
        "flows.auto.sources.web.caps[0].max:",
    ):
        assert expected in text, (expected, text)


@pytest.mark.parametrize(
    ("hours", "problem"),
    [
        ({"mon-fri": ["09:00-17:00"], "wed": ["16:00-18:00"]}, "hours overlap on wed"),
        ({"sat": ["14:00-10:00"]}, "end before they start"),
        ({"sat": ["9-17"]}, "are not HH:MM-HH:MM"),
        ({"fri-mon": ["09:00-17:00"]}, "runs backwards"),
        ({"closed": ["2027-01-02..2027-01-01"]}, "run backwards"),
    ],
)
def test_overlapping_inverted_or_unreadable_hours_are_refused(
    hours: dict[str, list[str]], problem: str
) -> None:
    with pytest.raises(ValueError, match=problem):
        Schedule.model_validate(hours)
