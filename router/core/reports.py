"""Team reports (issue 13 §3): who may read them, which period and filters they cover, and the
business calendars as rows SQL can count with.

The figures themselves are computed in SQL (`router.core.store.reports`) over the stored tickets,
events, routing log, SLA clocks and survey answers. Business time is not something PostgreSQL knows,
so each calendar a report needs is written out as one row per hour (its open segments and the
business seconds before it), filled on demand here from `sla.calendar`, the same arithmetic the SLA
clocks use.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime, time, timedelta
from functools import cache
from typing import Any
from zoneinfo import ZoneInfo, available_timezones

from agents.store import AgentIdentity
from router.core.actions import Context
from router.core.errors import Forbidden, InvalidInput
from router.core.store import reports as store
from sla.calendar import BusinessCalendar, elapsed_business_time

DEFAULT_DAYS = 30
MAX_DAYS = 366
MAX_YEARS_BACK = 10
"""A report covers at most a year: longer periods belong in a data warehouse, not a live query."""
_FILTER_LIMIT = 320
HOUR = 3600


@dataclass(frozen=True)
class Period:
    """Local dates `first_day`..`last_day` (both included) in `timezone`, as UTC instants [start, end)."""

    first_day: date
    last_day: date
    timezone: str
    start: datetime
    end: datetime


@dataclass(frozen=True)
class Filters:
    """Optional narrowing: a team (name), a channel, an agent (id or email)."""

    team: str | None = None
    channel: str | None = None
    agent: str | None = None


def require_reader(actor: AgentIdentity) -> None:
    """Reports are for leads and admins (the integration token counts as admin)."""
    if not actor.is_lead:
        raise Forbidden("reports are for leads and admins")


def period(first: str | None, last: str | None, timezone: str, today: date) -> Period:
    """The period from `from`/`to` query values (YYYY-MM-DD, both days included, in `timezone`);
    by default the last 30 days up to `today`."""
    last_day = _day(last, "to") if last else today
    first_day = _day(first, "from") if first else last_day - timedelta(days=DEFAULT_DAYS - 1)
    if first_day > last_day:
        raise InvalidInput("`from` must not be after `to`")
    if (last_day - first_day).days + 1 > MAX_DAYS:
        raise InvalidInput(f"a report covers at most {MAX_DAYS} days")
    # Business time is read from per-hour calendar rows from the period's start until now: a period
    # centuries away would have a report build millions of them.
    if first_day < today - timedelta(days=MAX_YEARS_BACK * 366) or last_day > today + timedelta(days=MAX_DAYS):
        raise InvalidInput(f"a report starts at most {MAX_YEARS_BACK} years ago and ends at most a year ahead")
    zone = ZoneInfo(timezone)
    return Period(first_day, last_day, timezone, datetime.combine(first_day, time(), zone),
                  datetime.combine(last_day + timedelta(days=1), time(), zone))


def filters(team: str | None, channel: str | None, agent: str | None) -> Filters:
    """Filters from query values: empty means none; each at most 320 characters."""
    values = []
    for name, value in (("team", team), ("channel", channel), ("agent", agent)):
        value = (value or "").strip() or None
        if value is not None and len(value) > _FILTER_LIMIT:
            raise InvalidInput(f"`{name}` is longer than {_FILTER_LIMIT} characters")
        values.append(value)
    return Filters(*values)


def _day(text: str, name: str) -> date:
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise InvalidInput(f"`{name}` must be a date like 2026-11-30") from None


def calendar_key(cal: BusinessCalendar) -> str:
    """The calendar's name and a fingerprint of everything that decides when it is open."""
    definition = repr((cal.timezone, cal.weekly_hours, cal.holiday_country, sorted(cal.closed_dates)))
    return f"{cal.name}:{hashlib.sha256(definition.encode()).hexdigest()[:16]}"


def day_intervals(cal: BusinessCalendar, day: date) -> list[tuple[datetime, datetime]]:
    """The open intervals of a local date: its weekly ranges, minus holidays and closed dates. Each
    range counts the business time `sla.calendar` gives it, so a range a DST change shortens ends
    early here too."""
    zone = ZoneInfo(cal.timezone)
    intervals = []
    for start_minute, end_minute in cal.weekly_hours[day.weekday()]:
        start = datetime.combine(day, time(start_minute // 60, start_minute % 60), zone)
        end = datetime.combine(day + timedelta(days=1), time(), zone) if end_minute == 24 * 60 else \
            datetime.combine(day, time(end_minute // 60, end_minute % 60), zone)
        open_time = elapsed_business_time(start, end, cal)
        if open_time > timedelta(0):
            intervals.append((start, start + open_time))
    return intervals


def hour_of(at: datetime) -> int:
    """Hours since the epoch: the key of `report_calendar_hours`."""
    return int(at.timestamp() // HOUR)


def calendar_rows(cal: BusinessCalendar, first: int, last: int, open_before_first: float) -> list[store.CalendarHour]:
    """Rows for the hours `first`..`last`, counting business seconds on from `open_before_first`."""
    zone = ZoneInfo(cal.timezone)
    first_day = datetime.fromtimestamp(first * HOUR, zone).date() - timedelta(days=1)
    last_day = datetime.fromtimestamp((last + 1) * HOUR, zone).date() + timedelta(days=1)
    segments = sorted((s.timestamp(), e.timestamp()) for day in _dates(first_day, last_day)
                      for s, e in day_intervals(cal, day))
    rows = []
    before = open_before_first
    passed = 0  # segments are sorted and never overlap: those ending before this hour are done with
    for hour in range(first, last + 1):
        low, high = hour * HOUR, (hour + 1) * HOUR
        while passed < len(segments) and segments[passed][1] <= low:
            passed += 1
        inside = []
        for start, end in segments[passed:]:
            if start >= high:
                break
            inside.append((max(start, low), min(end, high)))
        rows.append(store.CalendarHour(hour, before, [s for s, _ in inside], [e for _, e in inside]))
        before += sum(e - s for s, e in inside)
    return rows


def rows_before(cal: BusinessCalendar, first: int, last: int,
                open_before_after_last: float) -> list[store.CalendarHour]:
    """Rows for the hours `first`..`last` that end where the stored rows begin
    (`open_before_after_last` is the first stored hour's figure), so the origin never moves."""
    rows = calendar_rows(cal, first, last, 0.0)
    total = sum(e - s for row in rows for s, e in zip(row.starts, row.ends, strict=True))
    shift = open_before_after_last - total
    return [replace(row, open_before=row.open_before + shift) for row in rows]


def _dates(first: date, last: date) -> list[date]:
    return [first + timedelta(days=n) for n in range((last - first).days + 1)]


async def ensure_calendars(ctx: Context, calendars: Sequence[BusinessCalendar], first: int, last: int) -> None:
    """Make sure every calendar has rows for the hours `first`..`last` (extending what is stored
    either way; concurrent reports extend one at a time)."""
    for cal in calendars:
        key = calendar_key(cal)
        async with ctx.pool.acquire() as conn:
            bounds = await store.calendar_bounds(conn, key)
            if bounds is not None and bounds.first <= first and bounds.last >= last:
                continue
            async with conn.transaction():
                await store.lock_calendar(conn, key)
                bounds = await store.calendar_bounds(conn, key)
                if bounds is None:
                    await store.add_calendar_hours(conn, key, calendar_rows(cal, first, last, 0.0))
                    continue
                if first < bounds.first:
                    await store.add_calendar_hours(conn, key, rows_before(cal, first, bounds.first - 1,
                                                                          bounds.open_before_first))
                if last > bounds.last:
                    await store.add_calendar_hours(conn, key, calendar_rows(cal, bounds.last + 1, last,
                                                                            bounds.open_before_after_last))


@dataclass(frozen=True)
class Summary:
    """Everything the report shows, as plain JSON-ready values (`as_json`)."""

    period: Period
    filters: Filters
    figures: dict[str, Any]

    def as_json(self) -> dict[str, Any]:
        return {
            "period": {"from": self.period.first_day.isoformat(), "to": self.period.last_day.isoformat(),
                       "timezone": self.period.timezone, "start": self.period.start.isoformat(),
                       "end": self.period.end.isoformat()},
            "filters": {"team": self.filters.team, "channel": self.filters.channel, "agent": self.filters.agent},
            **self.figures,
        }


async def summary(ctx: Context, actor: AgentIdentity, span: Period, narrowing: Filters) -> Summary:
    """The report for a lead or admin: every figure over tickets created in `span` (backlog: now)."""
    require_reader(actor)
    config = ctx.config
    now = ctx.clock()
    policies = [(p.name, config.calendars[p.calendar]) for p in config.sla_policies if p.calendar in config.calendars]
    timed = {cal.name: cal for _, cal in policies if not cal.always_open}
    await ensure_calendars(ctx, list(timed.values()), hour_of(span.start), hour_of(max(now, span.end)))
    async with ctx.pool.acquire() as conn:
        scope = await store.resolve_scope(conn, narrowing.team, narrowing.agent)
    figures = await store.summary(ctx.pool, store.Query(
        start=span.start, end=span.end, now=now, scope=scope, channel=narrowing.channel,
        policies=[(name, None if cal.always_open else calendar_key(cal)) for name, cal in policies],
        service_timezone=config.service.timezone, timezones=_timezones()))
    return Summary(span, narrowing, figures)


@cache
def _timezones() -> list[str]:
    """Every IANA name this machine knows: a customer's stored timezone counts only if it is one."""
    return sorted(available_timezones())
