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
    warn_at: float = 0.75
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
    warn_at: datetime
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


def clock_times(start: datetime, duration: timedelta, warn_fraction: float, calendar: BusinessCalendar,
                paused_for: timedelta = timedelta(0)) -> ClockTimes:
    """Warning after `warn_fraction` of the business-time budget, breach at its end.

    `paused_for` is business time the clock stood still (ticket pending on the customer) and is
    added back, so recomputing after a pause or a policy change gives the same answer.
    """
    return ClockTimes(warn_at=add_business_time(start, duration * warn_fraction + paused_for, calendar),
                      due_at=add_business_time(start, duration + paused_for, calendar))
