"""What a team lead reads about tickets at risk, composed from plain facts: one card per ticket (its
state as it is *now*: warning, breach or resolved), a burst summary, the daily digest.

Pure and platform-neutral: the core gathers the facts, a chat channel (`channels.slack.blocks`) lays
the result out. Because a card is always composed from the ticket's current facts rather than from
the alert that triggered it, delivering alerts late, twice or out of order still shows the truth.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

CardState = Literal["ok", "warning", "breach", "resolved"]
"""`ok`: clocks running, none past a warning (only shown on request, `/sla T-1042`)."""

TARGET_LABELS = {"first_response": "First response", "next_response": "Next response", "resolution": "Resolution"}


@dataclass(frozen=True)
class AlertedClock:
    """One target of the ticket: on cards, those that warned or breached in their current cycle."""

    target: str
    warned: bool
    breached: bool
    level: int  # the highest warning level fired (0: none, e.g. only the breach was seen)
    fraction: float | None  # that level's share of the budget, when the policy still says
    started_at: datetime
    due_at: datetime
    met_at: datetime | None
    paused: bool


@dataclass(frozen=True)
class TicketFacts:
    """The ticket as a card shows it. Texts are the customers' and agents' own: layouts escape them."""

    ticket_id: int
    ref: str
    url: str
    subject: str | None
    status: str
    priority: str
    channel: str
    customer_name: str | None
    tier: str
    team: str | None
    assignee_email: str | None
    assignee_name: str | None
    answered_by: str | None
    answered_at: datetime | None
    solved_by: str | None
    solved_at: datetime | None


@dataclass(frozen=True)
class ClockLine:
    label: str
    status: str  # "18m left", "12m late", "met at 10:32"
    due: str  # due time in the team's timezone
    breached: bool
    met: bool


@dataclass(frozen=True)
class TicketCard:
    """One ticket's alert message. `actions` says whether buttons belong on it (not once resolved)."""

    state: CardState
    headline: str
    facts: TicketFacts
    clocks: tuple[ClockLine, ...]
    assignee_chat_id: str | None  # the assignee's user on the chat platform, to mention them
    activity: tuple[str, ...]
    snoozed_until: str | None
    resolution: str | None
    actions: bool


@dataclass(frozen=True)
class SummaryLine:
    ref: str
    url: str
    subject: str | None
    state: CardState
    status: str


@dataclass(frozen=True)
class BurstSummary:
    """Many alerts in one minute: one message listing them, linking to the inbox's At risk view."""

    lines: tuple[SummaryLine, ...]
    at_risk_url: str


@dataclass(frozen=True)
class AgentOnline:
    name: str
    load: int
    capacity: int


@dataclass(frozen=True)
class Digest:
    """A team's morning read: yesterday's breaches and compliance, and where things stand now."""

    team: str
    day: date
    breaches_yesterday: int
    met_yesterday: int  # targets met in time yesterday
    due_yesterday: int  # targets that ended yesterday (met or breached)
    at_risk: tuple[SummaryLine, ...]
    queued: int
    oldest_waiting_ref: str | None
    oldest_waiting_since: str | None  # e.g. "3h 05m"
    agents_online: tuple[AgentOnline, ...]
    at_risk_url: str

    @property
    def compliance(self) -> str:
        if not self.due_yesterday:
            return "no target fell due"
        return f"{100 * self.met_yesterday / self.due_yesterday:.0f}% ({self.met_yesterday}/{self.due_yesterday})"


def span(delta: timedelta) -> str:
    """A duration as leads read it: "45s", "12m", "1h 05m", "2d 3h"."""
    seconds = max(int(delta.total_seconds()), 0)
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes:02d}m"
    if minutes:
        return f"{minutes}m"
    return f"{secs}s"


def local_time(moment: datetime, timezone: str, now: datetime) -> str:
    """`moment` in the team's timezone: "10:45 JST" today, "Thu 26 Nov 10:45 JST" another day."""
    zone = ZoneInfo(timezone)
    here = moment.astimezone(zone)
    if here.date() == now.astimezone(zone).date():
        return here.strftime("%H:%M %Z")
    return here.strftime("%a %d %b %H:%M %Z")


def card_state(facts: TicketFacts, clocks: Sequence[AlertedClock]) -> CardState:
    """Breach while a breached target still runs, warning while a warned one does, ok while others
    run, else resolved."""
    if facts.status not in ("open", "pending"):
        return "resolved"
    running = [clock for clock in clocks if clock.met_at is None]
    if any(clock.breached for clock in running):
        return "breach"
    if any(clock.warned for clock in running):
        return "warning"
    return "ok" if running else "resolved"


def _clock_line(clock: AlertedClock, timezone: str, now: datetime) -> ClockLine:
    label = TARGET_LABELS.get(clock.target, clock.target)
    if clock.met_at is not None:
        status = f"met at {local_time(clock.met_at, timezone, now)}"
    elif clock.paused:
        status = "paused: waiting on the customer"
    elif now >= clock.due_at:
        status = f"{span(now - clock.due_at)} late"
    else:
        status = f"{span(clock.due_at - now)} left"
    if clock.met_at is None and not clock.breached and clock.fraction is not None:
        status += f" ({clock.fraction:.0%} warning)"
    return ClockLine(label, status, local_time(clock.due_at, timezone, now), clock.breached, clock.met_at is not None)


def _headline(state: CardState, facts: TicketFacts, clocks: Sequence[AlertedClock], now: datetime) -> str:
    running = [clock for clock in clocks if clock.met_at is None]
    if state == "breach":
        worst = min((c for c in running if c.breached), key=lambda c: c.due_at)
        return f"{facts.ref} breached: {TARGET_LABELS.get(worst.target, worst.target).lower()}" \
               f" {span(now - worst.due_at)} late"
    if state in ("warning", "ok"):
        soonest = min(running, key=lambda c: c.due_at)
        return f"{facts.ref} {'at risk' if state == 'warning' else 'on track'}:" \
               f" {TARGET_LABELS.get(soonest.target, soonest.target).lower()} due in {span(soonest.due_at - now)}"
    return f"{facts.ref} resolved"


def _resolution(facts: TicketFacts, timezone: str, now: datetime) -> str:
    """Who answered or solved it and when, for a resolved card."""
    if facts.status in ("solved", "closed") and facts.solved_at is not None:
        who = f" by {facts.solved_by}" if facts.solved_by else ""
        return f"Solved{who} at {local_time(facts.solved_at, timezone, now)}"
    if facts.status in ("solved", "closed"):
        return f"Ticket {facts.status}"
    if facts.answered_at is not None:
        who = f" by {facts.answered_by}" if facts.answered_by else ""
        return f"Answered{who} at {local_time(facts.answered_at, timezone, now)}"
    return "No longer at risk"


def compose_card(facts: TicketFacts, clocks: Sequence[AlertedClock], *, timezone: str, now: datetime,
                 assignee_chat_id: str | None = None, activity: Sequence[str] = (),
                 snoozed_until: datetime | None = None) -> TicketCard:
    """The card for a ticket as it stands at `now`. `assignee_chat_id`: the assignee's user on the
    chat platform, when their email is known there."""
    state = card_state(facts, clocks)
    ordered = sorted(clocks, key=lambda clock: clock.due_at)
    snoozed = local_time(snoozed_until, timezone, now) if snoozed_until and snoozed_until > now else None
    return TicketCard(
        state=state,
        headline=_headline(state, facts, ordered, now),
        facts=facts,
        clocks=tuple(_clock_line(clock, timezone, now) for clock in ordered),
        assignee_chat_id=assignee_chat_id,
        activity=tuple(activity),
        snoozed_until=snoozed,
        resolution=_resolution(facts, timezone, now) if state == "resolved" else None,
        actions=state != "resolved",
    )


def summary_line(facts: TicketFacts, clocks: Sequence[AlertedClock], *, now: datetime) -> SummaryLine:
    """One ticket's line in a burst summary or a digest: its state and the most pressing clock."""
    state = card_state(facts, clocks)
    running = sorted((c for c in clocks if c.met_at is None), key=lambda c: c.due_at)
    if state == "resolved" or not running:
        status = "resolved"
    else:
        first = running[0]
        when = f"{span(now - first.due_at)} late" if now >= first.due_at else f"{span(first.due_at - now)} left"
        status = f"{TARGET_LABELS.get(first.target, first.target)} {when}"
    return SummaryLine(facts.ref, facts.url, facts.subject, state, status)


@dataclass(frozen=True)
class Activity:
    """Something a person did from Slack, shown on the ticket's card."""

    who: str
    what: str
    at: datetime

    def text(self, timezone: str, now: datetime) -> str:
        return f"{self.what} by {self.who} at {local_time(self.at, timezone, now)}"
