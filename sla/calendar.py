"""Business calendars and business-time arithmetic: when SLA clocks run (SPEC §2.8).

Pure functions over a frozen `BusinessCalendar`, so due times are unit- and property-tested without a
database or a clock.

The model is the wall clock: an instant is *open* when the calendar's local clock reads a time inside
one of that weekday's ranges, on a date that is neither a public holiday of `holiday_country` nor in
`closed_dates`. Business time is the real time that passes while open. So at a DST change a range
counts the real time it spans (00:00-24:00 is 23 h on a spring-forward day and 25 h on a fall-back
day, while a 09:00-18:00 range with no change inside stays 9 h), wall times skipped by the gap are
never open, and repeated wall times are open both times round.

Ranges are whole minutes since local midnight, `0 <= start < end <= 1440`: 1440 is 24:00, so a day
open around the clock is `((0, 1440),)` and an overnight shift is two ranges on consecutive days.

All datetimes in and out are timezone-aware; results are in UTC. The arithmetic walks open intervals
day by day (never minute by minute), and gives up with ValueError after three years without any open
time, so a calendar that is never open cannot hang the SLA monitor.
"""

from __future__ import annotations

import heapq
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays

DAY_KEYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
DAY_NAMES = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
END_OF_DAY = 24 * 60  # minutes; the end of a range that runs to midnight (24:00)

Range = tuple[int, int]  # (start, end) minutes since local midnight
Week = tuple[tuple[Range, ...], ...]  # 7 days from Monday, each sorted
Interval = tuple[datetime, datetime]  # [start, end) in UTC

ALL_DAY_WEEK: Week = (((0, END_OF_DAY),),) * 7
_SEARCH_DAYS = 3 * 366  # this many days in a row without open time means "never open"
_DAY = timedelta(days=1)
_TIME = re.compile(r"(\d{1,2}):(\d{2})")


@dataclass(frozen=True)
class BusinessCalendar:
    """When business time counts. Config builds these with `make_calendar`."""

    name: str
    timezone: str  # IANA name, e.g. "Asia/Tokyo"
    weekly_hours: Week
    holiday_country: str | None = None  # code for the `holidays` package, e.g. "JP"; substitutes included
    closed_dates: frozenset[date] = frozenset()  # extra local dates closed all day
    always_open: bool = False  # 24x7: hours, holidays and closed dates are ignored

    def __post_init__(self) -> None:
        """Reject values the arithmetic would misread, whoever builds the calendar."""
        _zone(self.timezone)
        _check_week(self.weekly_hours)
        if self.holiday_country is not None and self.holiday_country not in _holiday_countries():
            raise ValueError(
                f"unknown holiday country {self.holiday_country!r} "
                '(use a code the holidays package knows, e.g. "JP" or "US")'
            )


def parse_hours(spec: str | Mapping[str, str | list[str]]) -> Week:
    """Weekly hours from config: "24x7", or a table of days ("mon", "mon-fri") to ranges ("09:00-18:00",
    several as a list or comma-separated, "" or [] for closed). Unlisted days are closed.

    Raises ValueError with a message an admin can act on.
    """
    if spec == "24x7":
        return ALL_DAY_WEEK
    if not isinstance(spec, Mapping):
        raise ValueError(
            'hours must be "24x7" or a table of days to ranges, e.g. {"mon-fri" = "09:00-18:00"}'
        )
    week: list[tuple[Range, ...]] = [()] * 7
    given_by: dict[int, str] = {}
    for key, value in spec.items():
        ranges = tuple(sorted(_parse_range(text, key) for text in _range_texts(value, key)))
        for day in _parse_days(key):
            if day in given_by:
                raise ValueError(f"{DAY_NAMES[day]} is given twice ({given_by[day]!r} and {key!r})")
            given_by[day] = key
            week[day] = ranges
    _check_week(tuple(week))
    return tuple(week)


def make_calendar(
    name: str,
    timezone: str,
    hours: str | Mapping[str, str | list[str]],
    holiday_country: str | None = None,
    closed_dates: Iterable[date | str] = (),
) -> BusinessCalendar:
    """A calendar from config values; raises ValueError on anything invalid.

    "24x7" hours make an `always_open` calendar, unless holidays or closed dates are given: then it is
    open around the clock except on those dates.
    """
    weekly = parse_hours(hours)
    if not any(weekly):
        raise ValueError(f"calendar {name!r} has no open hours; give hours for at least one day")
    country = holiday_country.upper() if holiday_country else None
    closed = frozenset(_parse_date(value) for value in closed_dates)
    return BusinessCalendar(
        name=name,
        timezone=timezone,
        weekly_hours=weekly,
        holiday_country=country,
        closed_dates=closed,
        always_open=hours == "24x7" and country is None and not closed,
    )


def is_open(at: datetime, cal: BusinessCalendar) -> bool:
    """Whether business time is counting at `at`."""
    at = _utc(at)
    if cal.always_open:
        return True
    local = at.astimezone(_zone(cal.timezone))
    day = local.date()
    since_midnight = local.replace(tzinfo=None) - datetime.combine(day, time())
    return _is_business_date(day, cal) and any(
        timedelta(minutes=start) <= since_midnight < timedelta(minutes=end)
        for start, end in cal.weekly_hours[day.weekday()]
    )


def next_open(at: datetime, cal: BusinessCalendar) -> datetime:
    """The instant business time next counts from: `at` itself (in UTC) when open."""
    at = _utc(at)
    if cal.always_open:
        return at
    start, _ = next(_open_intervals(cal, at))
    return start


def add_business_time(start: datetime, duration: timedelta, cal: BusinessCalendar) -> datetime:
    """The instant `duration` of business time after `start`: a due time.

    Zero returns `start` (in UTC) even when closed, so a zero target is due at once. A positive duration
    always ends while the clock was counting, at the latest at the end of a range, never at the next
    opening.
    """
    begin = _utc(start)
    if duration < timedelta(0):
        raise ValueError(f"business time to add must not be negative, got {duration}")
    if cal.always_open or duration == timedelta(0):
        return begin + duration
    remaining = duration
    intervals = _open_intervals(cal, begin)
    while True:
        open_from, open_until = next(intervals)
        if remaining <= open_until - open_from:
            return open_from + remaining
        remaining -= open_until - open_from


def elapsed_business_time(a: datetime, b: datetime, cal: BusinessCalendar) -> timedelta:
    """Business time between two instants; zero unless `b` is after `a`."""
    begin, end = _utc(a), _utc(b)
    if end <= begin:
        return timedelta(0)
    if cal.always_open:
        return end - begin
    tz = _zone(cal.timezone)
    # A fall-back can show an instant the previous or next local date, hence the extra day each side.
    day, last = begin.astimezone(tz).date() - _DAY, end.astimezone(tz).date() + _DAY
    total = timedelta(0)
    while day <= last:
        for open_from, open_until in _day_intervals(day, cal):
            total += max(timedelta(0), min(open_until, end) - max(open_from, begin))
        day += _DAY
    return total


def _open_intervals(cal: BusinessCalendar, since: datetime) -> Iterator[Interval]:
    """Open intervals ending after `since`, in time order, clipped to start no earlier than `since`.

    Days are visited in date order, but a fall-back just after midnight can show a few minutes of the
    previous date after the first minutes of the new one (America/Goose_Bay until 2010), so intervals wait
    in a heap until no later date can have an earlier instant: UTC offsets are under a day.
    """
    tz = _zone(cal.timezone)
    day = since.astimezone(tz).date() - _DAY
    pending: list[Interval] = []
    quiet_days = 0
    while quiet_days < _SEARCH_DAYS:
        found = [(max(start, since), end) for start, end in _day_intervals(day, cal) if end > since]
        for interval in found:
            heapq.heappush(pending, interval)
        quiet_days = 0 if found else quiet_days + 1
        day += _DAY
        horizon = datetime.combine(day, time(), UTC) - _DAY
        while pending and pending[0][0] < horizon:
            yield heapq.heappop(pending)
    raise ValueError(f"calendar {cal.name!r} has no open time within {_SEARCH_DAYS} days after {since}")


@lru_cache(maxsize=8192)
def _day_intervals(day: date, cal: BusinessCalendar) -> tuple[Interval, ...]:
    """The instants whose local wall clock reads a time in one of `day`'s open ranges (cached: every
    due time computed on a busy day walks the same few days)."""
    ranges = cal.weekly_hours[day.weekday()]
    if not ranges or not _is_business_date(day, cal):
        return ()
    tz = _zone(cal.timezone)
    # Wall readings written as UTC datetimes: an instant is its wall reading minus its UTC offset.
    midnight = datetime.combine(day, time(), UTC)
    before, change, after = _offsets_near(midnight, tz)
    intervals: list[Interval] = []
    for start, end in ranges:
        wall_start, wall_end = midnight + timedelta(minutes=start), midnight + timedelta(minutes=end)
        if change is None:
            intervals.append((wall_start - before, wall_end - before))
        else:
            intervals.append((wall_start - before, min(wall_end - before, change)))
            intervals.append((max(wall_start - after, change), wall_end - after))
    return tuple((start, end) for start, end in intervals if start < end)


def _offsets_near(midnight: datetime, tz: ZoneInfo) -> tuple[timedelta, datetime | None, timedelta]:
    """The UTC offsets before and after the offset change near a local date, and the change's instant
    (None when there is none).

    Every instant showing that date lies within a day of its wall-clock midnight, and tzdata never
    changes a zone's offset twice within three days (checked for 1970-2045), so one change at most.
    """
    low, high = midnight - _DAY, midnight + 2 * _DAY
    before, after = _offset(low, tz), _offset(high, tz)
    if before == after:
        return before, None, after
    while high - low > timedelta(seconds=1):  # tzdata changes happen on whole seconds
        middle = low + timedelta(seconds=(high - low) // timedelta(seconds=2))
        if _offset(middle, tz) == before:
            low = middle
        else:
            high = middle
    return before, high, after


def _offset(instant: datetime, tz: ZoneInfo) -> timedelta:
    offset = instant.astimezone(tz).utcoffset()
    assert offset is not None  # ZoneInfo always has one
    return offset


def _is_business_date(day: date, cal: BusinessCalendar) -> bool:
    if day in cal.closed_dates:
        return False
    return cal.holiday_country is None or day not in _holiday_dates(cal.holiday_country, day.year)


@lru_cache(maxsize=1024)
def _holiday_dates(country: str, year: int) -> frozenset[date]:
    """Public holidays, substitute holidays included; cached because building them is slow."""
    return frozenset(holidays.country_holidays(country, years=year))


@lru_cache(maxsize=1)
def _holiday_countries() -> frozenset[str]:
    return frozenset(holidays.list_supported_countries())


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f'unknown timezone {name!r} (use an IANA name like "Asia/Tokyo")') from exc


def _utc(at: datetime) -> datetime:
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError(f"naive datetime {at.isoformat()}: business time needs a timezone-aware datetime")
    return at.astimezone(UTC)


def _check_week(week: Week) -> None:
    if len(week) != 7:
        raise ValueError(f"weekly hours need 7 days from Monday, got {len(week)}")
    for day, ranges in enumerate(week):
        previous: Range | None = None
        for start, end in ranges:
            if not 0 <= start < end <= END_OF_DAY:
                raise ValueError(
                    f"{DAY_NAMES[day]}: {_format_range((start, end))} is not a range within a day"
                )
            if previous is not None and start < previous[0]:
                raise ValueError(f"{DAY_NAMES[day]}: ranges must be in time order")
            if previous is not None and start < previous[1]:
                raise ValueError(
                    f"{DAY_NAMES[day]}: {_format_range(previous)} overlaps {_format_range((start, end))}"
                )
            previous = (start, end)


def _range_texts(value: object, key: str) -> list[str]:
    texts = [value] if isinstance(value, str) else value
    if not isinstance(texts, list) or not all(isinstance(text, str) for text in texts):
        raise ValueError(f'{key}: hours must be a range like "09:00-18:00" or a list of them, got {value!r}')
    return [part.strip() for text in texts for part in text.split(",") if part.strip()]


def _parse_days(key: str) -> range:
    first, dash, last = key.strip().lower().partition("-")
    start = _day_index(first, key)
    end = _day_index(last, key) if dash else start
    if end < start:
        raise ValueError(f'days {key!r} must run forward through the week (mon to sun), e.g. "mon-fri"')
    return range(start, end + 1)


def _day_index(word: str, key: str) -> int:
    try:
        return DAY_KEYS.index(word.strip())
    except ValueError:
        raise ValueError(
            f'unknown day {key!r} (use mon, tue, wed, thu, fri, sat, sun or a range like "mon-fri")'
        ) from None


def _parse_range(text: str, key: str) -> Range:
    start_text, dash, end_text = text.partition("-")
    if not dash:
        raise ValueError(f'{key}: bad range {text!r} (use HH:MM-HH:MM, e.g. "09:00-18:00")')
    start, end = _parse_time(start_text, key), _parse_time(end_text, key)
    if start == END_OF_DAY:
        raise ValueError(f"{key}: {text!r} starts at 24:00, which can only end a range")
    if end <= start:
        raise ValueError(
            f"{key}: {text!r} must end after it starts "
            '(split overnight hours over two days, e.g. "22:00-24:00" and "00:00-06:00")'
        )
    return start, end


def _parse_time(text: str, key: str) -> int:
    match = _TIME.fullmatch(text.strip())
    if match:
        minutes = int(match[1]) * 60 + int(match[2])
        if int(match[2]) < 60 and minutes <= END_OF_DAY:
            return minutes
    raise ValueError(f"{key}: bad time {text.strip()!r} (use HH:MM from 00:00 to 24:00)")


def _parse_date(value: date | str) -> date:
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    try:
        return date.fromisoformat(str(value).strip())
    except ValueError:
        raise ValueError(f"bad closed date {value!r} (use YYYY-MM-DD)") from None


def _format_range(hours: Range) -> str:
    return "-".join(f"{minutes // 60:02d}:{minutes % 60:02d}" for minutes in hours)
