"""Business hours (HANDOFF_HOURS, HANDOFF_TIMEZONE, HANDOFF_HOLIDAYS): when a handoff is offered at all."""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest

from rasa_flex_handoff.hours import BusinessHours, HoursError, business_hours, parse_openings

BERLIN = ZoneInfo("Europe/Berlin")
WEEKDAYS = business_hours("mon-fri 09:00-17:00, sat 10:00-14:00", "Europe/Berlin", "2026-12-24, 2026-12-25")


def at(year: int, month: int, day: int, hour: int, minute: int = 0, zone: object = BERLIN) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=zone)  # type: ignore[arg-type]


def test_nothing_set_is_always_open() -> None:
    hours = business_hours(None)
    assert hours.always_open and hours.is_open(at(2026, 11, 29, 3)) and hours.next_opening(at(2026, 11, 29, 3)) is None


@pytest.mark.parametrize(
    ("moment", "open_"),
    [
        (at(2026, 11, 30, 9, 0), True),  # Monday, opening minute
        (at(2026, 11, 30, 16, 59), True),
        (at(2026, 11, 30, 17, 0), False),  # the end is exclusive
        (at(2026, 11, 30, 8, 59), False),
        (at(2026, 12, 5, 11), True),  # Saturday
        (at(2026, 12, 5, 15), False),
        (at(2026, 12, 6, 11), False),  # Sunday
        (at(2026, 12, 24, 11), False),  # a holiday on a Thursday
    ],
)
def test_open_in_the_schedules_own_time_zone(moment: datetime, open_: bool) -> None:
    assert WEEKDAYS.is_open(moment) is open_


def test_a_moment_in_another_zone_is_read_in_the_schedules() -> None:
    # 08:30 UTC is 09:30 in Berlin (winter): open; 16:30 UTC is 17:30: closed.
    assert WEEKDAYS.is_open(at(2026, 11, 30, 8, 30, UTC))
    assert not WEEKDAYS.is_open(at(2026, 11, 30, 16, 30, UTC))


def test_a_range_past_midnight_belongs_to_the_day_it_starts() -> None:
    night = BusinessHours(parse_openings("fri 22:00-02:00"))
    assert night.is_open(at(2026, 12, 4, 23, zone=UTC))  # Friday night
    assert night.is_open(at(2026, 12, 5, 1, zone=UTC))  # early Saturday, still Friday's
    assert not night.is_open(at(2026, 12, 5, 2, zone=UTC))
    assert not night.is_open(at(2026, 12, 4, 1, zone=UTC))  # early Friday is Thursday's night


def test_a_day_range_may_wrap_the_week() -> None:
    weekend = BusinessHours(parse_openings("sat-mon 10:00-12:00"))
    assert [weekend.is_open(at(2026, 11, day, 11, zone=UTC)) for day in range(27, 31)] == [False, True, True, True]


def test_the_next_opening_skips_closed_days_and_holidays() -> None:
    assert WEEKDAYS.next_opening(at(2026, 12, 5, 15)) == at(2026, 12, 7, 9)  # Saturday afternoon -> Monday
    assert WEEKDAYS.next_opening(at(2026, 12, 23, 18)) == at(2026, 12, 26, 10)  # 24th and 25th are holidays
    assert WEEKDAYS.next_opening(at(2026, 11, 30, 10)) is None  # open now


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ("weekdays 9-5", "is not a day or day range"),
        ("mon-fri 09:00", "is not a day or day range"),
        ("mo 09:00-17:00", "is not a day"),
        ("mon 25:00-26:00", "is not a time of day"),
        ("mon 24:00-01:00", "is not a time of day"),
        ("mon 09:60-10:00", "is not a time of day"),
        ("mon 09:00-09:00", "same time"),
        (" , ", "no opening hours"),
    ],
)
def test_a_schedule_that_cannot_be_read_says_what_is_wrong(text: str, complaint: str) -> None:
    with pytest.raises(HoursError, match=complaint):
        parse_openings(text)


def test_time_zone_and_holidays_are_checked() -> None:
    with pytest.raises(HoursError, match="not a time zone"):
        business_hours("mon 09:00-17:00", "Mars/Olympus")
    with pytest.raises(HoursError, match="not a date"):
        business_hours("mon 09:00-17:00", None, "2026-13-01")
    assert business_hours("mon 09:00-17:00", None, "2026-12-24,,2026-12-25").holidays == {date(2026, 12, 24), date(2026, 12, 25)}


def test_holidays_alone_close_those_days() -> None:
    hours = business_hours(None, None, "2026-12-25")
    assert not hours.is_open(at(2026, 12, 25, 12, zone=UTC)) and hours.is_open(at(2026, 12, 26, 12, zone=UTC))
