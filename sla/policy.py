"""Pure SLA policy logic: the policy type, which policy applies, and when its clocks warn and fall due.

`SlaPolicy` and `SlaRules` are this package's own config types: the config loader builds them, so
`sla/` never imports `router` (ARCHITECTURE: the import direction).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from sla.calendar import BusinessCalendar, add_business_time

Target = Literal["first_response", "next_response", "resolution"]


@dataclass(frozen=True)
class SlaPolicy:
    """`[[sla_policies]]`: targets as business-time durations in `calendar`, and what it matches."""

    name: str
    calendar: str
    first_response: timedelta | None = None
    next_response: timedelta | None = None
    resolution: timedelta | None = None
    warn_at: tuple[float, ...] = (0.75,)
    """Warning levels: fractions of each target's budget, ascending, each in (0, 1) (config `warn_at`)."""
    match_priority: frozenset[str] = frozenset()
    match_tier: frozenset[str] = frozenset()
    match_channel: frozenset[str] = frozenset()
    match_topic: frozenset[str] = frozenset()


@dataclass(frozen=True)
class SlaRules:
    """Every policy (in config order: the first match wins) and the calendars they count in."""

    policies: Sequence[SlaPolicy]
    calendars: Mapping[str, BusinessCalendar]

    def named(self, name: str | None) -> SlaPolicy | None:
        return next((p for p in self.policies if p.name == name), None) if name else None

    def calendar_of(self, policy: SlaPolicy) -> BusinessCalendar:
        return self.calendars[policy.calendar]

    def match(self, facts: TicketFacts) -> SlaPolicy | None:
        return match_policy(self.policies, facts)


@dataclass(frozen=True)
class TicketFacts:
    """What policies match on."""

    priority: str
    tier: str | None
    channel: str
    topic: str | None


@dataclass(frozen=True)
class ClockTimes:
    warn_at: datetime  # the first warning level
    due_at: datetime


def matches(policy: SlaPolicy, facts: TicketFacts) -> bool:
    """Every criterion the policy sets must hold; a policy with no criteria matches everything."""
    return all(not wanted or value in wanted for wanted, value in (
        (policy.match_priority, facts.priority),
        (policy.match_tier, facts.tier),
        (policy.match_channel, facts.channel),
        (policy.match_topic, facts.topic),
    ))


def match_policy(policies: Sequence[SlaPolicy], facts: TicketFacts) -> SlaPolicy | None:
    """The first matching policy in config order, so admins list specific policies before the catch-all."""
    return next((policy for policy in policies if matches(policy, facts)), None)


def target_duration(policy: SlaPolicy, target: Target) -> timedelta | None:
    duration: timedelta | None = getattr(policy, target)
    return duration


def clock_times(start: datetime, duration: timedelta, warn_levels: Sequence[float], calendar: BusinessCalendar,
                paused_for: timedelta = timedelta(0)) -> ClockTimes:
    """The first warning (after the lowest of `warn_levels` of the business-time budget) and the
    breach at its end; later levels are the monitor's business (`warning_time`).

    `paused_for` is business time the clock stood still (ticket pending on the customer) and is
    added back, so recomputing after a pause or a policy change gives the same answer.
    """
    return ClockTimes(warn_at=warning_time(start, duration, min(warn_levels), calendar, paused_for),
                      due_at=add_business_time(start, duration + paused_for, calendar))


def warning_time(start: datetime, duration: timedelta, fraction: float, calendar: BusinessCalendar,
                 paused_for: timedelta = timedelta(0)) -> datetime:
    """When `fraction` of the business-time budget `duration` started at `start` is used up."""
    return add_business_time(start, duration * fraction + paused_for, calendar)


@dataclass(frozen=True)
class NextWarning:
    """Where a running clock stands among its policy's warning levels (numbered from 1)."""

    fire: int | None  # the highest level crossed and not fired yet; lower crossed ones are moot
    next_at: datetime | None  # when the next level after that falls due; None: no level left


def next_warning(policy: SlaPolicy, target: Target, calendar: BusinessCalendar, *, started_at: datetime,
                 paused_for: timedelta, fired: int, now: datetime) -> NextWarning:
    """The warning level to fire now, if any, and when the one after it is due, for a clock that has
    fired levels up to `fired`. Computed from the clock itself (start, paused time, policy) every
    time, so a pause, a resume or a new policy never leaves a stale level behind."""
    duration = target_duration(policy, target)
    if duration is None:
        return NextWarning(None, None)
    fire = None
    for level, fraction in enumerate(policy.warn_at, start=1):
        if level <= fired:
            continue
        at = warning_time(started_at, duration, fraction, calendar, paused_for)
        if at > now:
            return NextWarning(fire, at)
        fire = level
    return NextWarning(fire, None)
