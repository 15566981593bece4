"""`/admin/sla`: the SLA policies and business calendars in force, read-only: they belong to
router.toml (edit it, then SIGHUP or restart)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from router.web.http import services
from router.web.inbox.admin.common import page, viewer
from sla.calendar import DAY_NAMES, BusinessCalendar
from sla.policy import SlaPolicy

SECTION = "/admin/sla"


def duration_text(value: timedelta | None) -> str:
    """`30m`, `4h`, `1h 30m`, `3d`, `45s`; an em dash when the target is not set."""
    if value is None:
        return "—"
    seconds = int(value.total_seconds())
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        count, seconds = divmod(seconds, size)
        if count:
            parts.append(f"{count}{unit}")
    return " ".join(parts) or "0s"


def fractions_text(value: float | tuple[float, ...] | list[float]) -> str:
    """`warn_at` as percentages: one fraction, or a list of them."""
    values = value if isinstance(value, tuple | list) else (value,)
    return ", ".join(f"{fraction * 100:g} %" for fraction in values)


@dataclass(frozen=True)
class PolicyView:
    name: str
    match: tuple[tuple[str, str], ...]  # (criterion label, values); empty: matches every ticket
    first_response: str
    next_response: str
    resolution: str
    warn_at: str
    calendar: str


@dataclass(frozen=True)
class CalendarView:
    name: str
    timezone: str
    always_open: bool
    days: tuple[tuple[str, str], ...]  # (English day name, "09:00-18:00" or "" when closed)
    holidays: str | None
    closed_dates: tuple[str, ...]


def policy_view(policy: SlaPolicy) -> PolicyView:
    criteria = (("Priority", policy.match_priority), ("Customer tier", policy.match_tier),
                ("Customer channel", policy.match_channel), ("Topic", policy.match_topic))
    return PolicyView(
        name=policy.name,
        match=tuple((label, ", ".join(sorted(values))) for label, values in criteria if values),
        first_response=duration_text(policy.first_response),
        next_response=duration_text(policy.next_response),
        resolution=duration_text(policy.resolution),
        warn_at=fractions_text(policy.warn_at),
        calendar=policy.calendar,
    )


def _minutes(value: int) -> str:
    return f"{value // 60:02d}:{value % 60:02d}"


def calendar_view(calendar: BusinessCalendar) -> CalendarView:
    days = tuple((DAY_NAMES[index], ", ".join(f"{_minutes(start)}-{_minutes(end)}" for start, end in ranges))
                 for index, ranges in enumerate(calendar.weekly_hours))
    return CalendarView(name=calendar.name, timezone=calendar.timezone, always_open=calendar.always_open, days=days,
                        holidays=calendar.holiday_country,
                        closed_dates=tuple(day.isoformat() for day in sorted(calendar.closed_dates)))


async def sla_page(request: Request) -> Response:
    agent = await viewer(request)
    config = services(request).config
    return page(request, agent, "admin_sla.html", SECTION, {
        "policies": [policy_view(p) for p in config.sla_policies],
        "calendars": [calendar_view(c) for c in config.calendars.values()],
        "config_source": config.source,
    })


routes = [Route("/admin/sla", sla_page, methods=["GET"])]
