"""Business hours: when people are there to take a chat (HANDOFF_HOURS, HANDOFF_TIMEZONE, HANDOFF_HOLIDAYS).

Checked before any Flex chat is made, so a visitor out of hours is told at once and offered to
leave a message, instead of waiting in a queue nobody works. Pure and without Rasa, so the
action server, the connector and the settings check share it.

The schedule is written the way a team says it: `mon-fri 09:00-17:00, sat 10:00-14:00`. Each
entry is a day or a day range (wrapping, e.g. `fri-mon`) and a time range in the schedule's time
zone; `24:00` ends a day, and a range ending before it starts runs past midnight into the next
day (`fri 22:00-02:00`). A day may have several entries. Holidays are closed all day.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, tzinfo
from typing import FrozenSet, List, Optional, Tuple
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_ENTRY = re.compile(r"^(?P<first>[a-z]{3})(?:-(?P<last>[a-z]{3}))?\s+(?P<start>\d{1,2}:\d{2})-(?P<end>\d{1,2}:\d{2})$")
# How far ahead `next_opening` looks: a year of holidays is plenty.
_LOOKAHEAD_DAYS = 400


class HoursError(ValueError):
    """A schedule, time zone or holiday list that cannot be read; the message says what is wrong."""


@dataclass(frozen=True)
class Opening:
    """One weekly opening: `weekday` (0 = Monday) from `start` to `end` minutes after that day's midnight.

    `end` may pass 1440 (24:00): the opening then runs into the next day.
    """

    weekday: int
    start: int
    end: int


@dataclass(frozen=True)
class BusinessHours:
    """When agents take chats. No openings at all means always open (HANDOFF_HOURS unset)."""

    openings: Tuple[Opening, ...] = ()
    zone: tzinfo = ZoneInfo("UTC")
    holidays: FrozenSet[date] = frozenset()

    @property
    def always_open(self) -> bool:
        """Whether no schedule was set: chats are taken at any time."""
        return not self.openings and not self.holidays

    def is_open(self, now: datetime) -> bool:
        """Whether `now` (timezone-aware) falls in an opening that is not on a holiday."""
        if self.always_open:
            return True
        local = now.astimezone(self.zone)
        if not self.openings:  # holidays only: every other day all day
            return local.date() not in self.holidays
        minute = local.hour * 60 + local.minute
        for back in (0, 1):  # an opening that started yesterday may still run
            day = local.date() - timedelta(days=back)
            if day in self.holidays:
                continue
            offset = minute + back * 1440
            if any(o.weekday == day.weekday() and o.start <= offset < o.end for o in self.openings):
                return True
        return False

    def next_opening(self, now: datetime) -> Optional[datetime]:
        """When the next opening after `now` starts (in the schedule's zone); None when open now or never again."""
        if self.is_open(now):
            return None
        local = now.astimezone(self.zone)
        for ahead in range(_LOOKAHEAD_DAYS):
            day = local.date() + timedelta(days=ahead)
            if day in self.holidays:
                continue
            starts = sorted(o.start for o in self.openings if o.weekday == day.weekday()) if self.openings else [0]
            for start in starts:
                begins = datetime.combine(day, time(start // 60, start % 60), tzinfo=self.zone)
                if begins > local:
                    return begins
        return None


def _minutes(text: str, entry: str, allow_end_of_day: bool) -> int:
    hours, minutes = (int(part) for part in text.split(":"))
    if minutes > 59 or hours > 24 or (hours == 24 and (minutes or not allow_end_of_day)):
        raise HoursError(f"{text!r} in {entry!r} is not a time of day (HH:MM, 00:00 to 24:00)")
    return hours * 60 + minutes


def _day(name: str, entry: str) -> int:
    if name not in DAYS:
        raise HoursError(f"{name!r} in {entry!r} is not a day (use {', '.join(DAYS)})")
    return DAYS.index(name)


def parse_openings(text: str) -> Tuple[Opening, ...]:
    """The openings of a schedule like `mon-fri 09:00-17:00, sat 10:00-14:00` (HoursError naming the bad part)."""
    openings: List[Opening] = []
    for raw in text.split(","):
        entry = " ".join(raw.strip().lower().split())
        if not entry:
            continue
        found = _ENTRY.match(entry)
        if found is None:
            raise HoursError(f"{entry!r} is not a day or day range and a time range, e.g. 'mon-fri 09:00-17:00'")
        first = _day(found["first"], entry)
        last = _day(found["last"], entry) if found["last"] else first
        start = _minutes(found["start"], entry, allow_end_of_day=False)
        end = _minutes(found["end"], entry, allow_end_of_day=True)
        if end == start:
            raise HoursError(f"{entry!r} opens and closes at the same time")
        if end < start:
            end += 1440  # runs past midnight
        days = [(first + step) % 7 for step in range(((last - first) % 7) + 1)]
        openings += [Opening(weekday, start, end) for weekday in days]
    if not openings:
        raise HoursError("no opening hours given")
    return tuple(openings)


def parse_zone(name: str) -> tzinfo:
    """An IANA time zone (`Europe/Berlin`); HoursError when this machine does not know it."""
    try:
        return ZoneInfo(name.strip())
    except (ZoneInfoNotFoundError, ValueError):
        raise HoursError(f"{name!r} is not a time zone name (IANA, e.g. Europe/Berlin)") from None


def parse_holidays(text: str) -> FrozenSet[date]:
    """Comma-separated dates (`2026-12-24, 2026-12-25`)."""
    found = set()
    for raw in text.split(","):
        value = raw.strip()
        if not value:
            continue
        try:
            found.add(date.fromisoformat(value))
        except ValueError:
            raise HoursError(f"{value!r} is not a date (YYYY-MM-DD)") from None
    return frozenset(found)


def business_hours(hours: Optional[str], zone: Optional[str] = None, holidays: Optional[str] = None) -> BusinessHours:
    """The schedule the three settings describe; nothing set means always open."""
    return BusinessHours(
        openings=parse_openings(hours) if hours else (),
        zone=parse_zone(zone) if zone else ZoneInfo("UTC"),
        holidays=parse_holidays(holidays) if holidays else frozenset(),
    )
