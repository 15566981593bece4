"""SLA clocks in PostgreSQL (`sla_targets`, written only here and by the monitor's markers):
start, stop, pause, resume and recompute.

Each function runs inside the caller's transaction, next to the ticket change that causes it, so
a clock can never disagree with the ticket it belongs to. Tickets are read through the small
`ClockedTicket` protocol and never written here: when a policy changes, `recompute` says which
one, and the caller records it on the ticket.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Protocol

import asyncpg

from sla.calendar import elapsed_business_time
from sla.policy import SlaPolicy, SlaRules, Target, TicketFacts, clock_times, target_duration


class ClockedTicket(Protocol):
    """What the clocks need to know about a ticket (the core's `Ticket` has these fields)."""

    @property
    def id(self) -> int: ...
    @property
    def status(self) -> str: ...
    @property
    def priority(self) -> str: ...
    @property
    def channel(self) -> str: ...
    @property
    def topic(self) -> str | None: ...
    @property
    def sla_policy(self) -> str | None: ...
    @property
    def first_responded_at(self) -> datetime | None: ...
    @property
    def last_agent_reply_at(self) -> datetime | None: ...
    @property
    def solved_at(self) -> datetime | None: ...
    @property
    def created_at(self) -> datetime: ...


async def _upsert_clock(conn: asyncpg.Connection, rules: SlaRules, ticket_id: int, policy: SlaPolicy,
                        target: Target, start: datetime, *, new_cycle: bool = False) -> None:
    duration = target_duration(policy, target)
    if duration is None:
        return
    times = clock_times(start, duration, policy.warn_at, rules.calendar_of(policy))
    await conn.execute(
        "INSERT INTO sla_targets (ticket_id, target, policy, started_at, warn_at, due_at)"
        " VALUES ($1, $2, $3, $4, $5, $6)"
        " ON CONFLICT (ticket_id, target) DO UPDATE SET policy = EXCLUDED.policy,"
        " started_at = EXCLUDED.started_at, warn_at = EXCLUDED.warn_at, due_at = EXCLUDED.due_at,"
        " cycle = sla_targets.cycle + CASE WHEN $7 THEN 1 ELSE 0 END, paused_at = NULL, paused_for = '0',"
        " met_at = NULL, warned_at = NULL, breached_at = NULL",
        ticket_id, target, policy.name, start, times.warn_at, times.due_at, new_cycle)


async def start_ticket(conn: asyncpg.Connection, rules: SlaRules, ticket_id: int, policy: SlaPolicy | None,
                       now: datetime) -> datetime | None:
    """A new ticket (whose `sla_policy` is already `policy`): start its first-response and
    resolution clocks in one statement. Returns the first-response due time, which the
    acknowledgement promises, if the policy has one."""
    if policy is None:
        return None
    calendar = rules.calendar_of(policy)
    started = {target: clock_times(now, duration, policy.warn_at, calendar)
               for target in ("first_response", "resolution")
               if (duration := target_duration(policy, target)) is not None}
    if started:
        await conn.execute(
            "INSERT INTO sla_targets (ticket_id, target, policy, started_at, warn_at, due_at)"
            " SELECT $1, target, $2, $3, warn_at, due_at"
            " FROM unnest($4::text[], $5::timestamptz[], $6::timestamptz[]) AS x(target, warn_at, due_at)",
            ticket_id, policy.name, now, list(started), [t.warn_at for t in started.values()],
            [t.due_at for t in started.values()])
    first = started.get("first_response")
    return first.due_at if first else None


async def customer_wrote(conn: asyncpg.Connection, rules: SlaRules, ticket: ClockedTicket, *, was_pending: bool,
                         now: datetime) -> None:
    """The customer wrote on an existing ticket: paused clocks resume, and a message after an agent
    reply starts a next-response clock (unless one is already running)."""
    if was_pending:
        await resume(conn, rules, ticket.id, now)
    if ticket.last_agent_reply_at is None:
        return
    policy = rules.named(ticket.sla_policy)
    if policy is None or policy.next_response is None:
        return
    running = await conn.fetchval(
        "SELECT met_at IS NULL FROM sla_targets WHERE ticket_id = $1 AND target = 'next_response'", ticket.id)
    if not running:
        await _upsert_clock(conn, rules, ticket.id, policy, "next_response", now, new_cycle=True)


async def reopen(conn: asyncpg.Connection, rules: SlaRules, ticket: ClockedTicket, now: datetime) -> None:
    """A solved or closed ticket came back: a new resolution cycle starts, and a new first-response
    cycle when nobody ever replied (next response follows the usual rule in `customer_wrote`)."""
    policy = rules.named(ticket.sla_policy)
    if policy is None:
        return
    await _upsert_clock(conn, rules, ticket.id, policy, "resolution", now, new_cycle=True)
    if ticket.first_responded_at is None:
        await _upsert_clock(conn, rules, ticket.id, policy, "first_response", now, new_cycle=True)


async def agent_replied(conn: asyncpg.Connection, ticket_id: int, now: datetime) -> None:
    await conn.execute(
        "UPDATE sla_targets SET met_at = $2 WHERE ticket_id = $1 AND met_at IS NULL"
        " AND target IN ('first_response', 'next_response')", ticket_id, now)


async def stop_all(conn: asyncpg.Connection, ticket_id: int, now: datetime) -> None:
    """Solved or closed: nothing is owed any more."""
    await conn.execute("UPDATE sla_targets SET met_at = $2 WHERE ticket_id = $1 AND met_at IS NULL", ticket_id, now)


async def pause(conn: asyncpg.Connection, ticket_id: int, now: datetime) -> None:
    """Waiting on the customer: the clocks stand still."""
    await conn.execute("UPDATE sla_targets SET paused_at = $2 WHERE ticket_id = $1 AND met_at IS NULL"
                       " AND paused_at IS NULL", ticket_id, now)


async def resume(conn: asyncpg.Connection, rules: SlaRules, ticket_id: int, now: datetime) -> None:
    """Back from pending: credit the paused business time and move warn/due times accordingly."""
    rows = await conn.fetch("SELECT target, policy, started_at, paused_at, paused_for FROM sla_targets"
                            " WHERE ticket_id = $1 AND met_at IS NULL AND paused_at IS NOT NULL", ticket_id)
    for row in rows:
        policy = rules.named(row["policy"])
        if policy is None:
            continue
        paused_for = row["paused_for"] + elapsed_business_time(row["paused_at"], now, rules.calendar_of(policy))
        await _set_times(conn, rules, ticket_id, row["target"], policy, row["started_at"], paused_for)


async def _set_times(conn: asyncpg.Connection, rules: SlaRules, ticket_id: int, target: Target, policy: SlaPolicy,
                     started_at: datetime, paused_for: timedelta) -> None:
    duration = target_duration(policy, target)
    if duration is None:
        await conn.execute("DELETE FROM sla_targets WHERE ticket_id = $1 AND target = $2 AND met_at IS NULL"
                           " AND warned_at IS NULL AND breached_at IS NULL", ticket_id, target)
        return
    times = clock_times(started_at, duration, policy.warn_at, rules.calendar_of(policy), paused_for)
    await conn.execute(
        "UPDATE sla_targets SET policy = $3, warn_at = $4, due_at = $5, paused_at = NULL, paused_for = $6"
        " WHERE ticket_id = $1 AND target = $2", ticket_id, target, policy.name, times.warn_at, times.due_at,
        paused_for)


def policy_for(rules: SlaRules, ticket: ClockedTicket, tier: str | None) -> SlaPolicy | None:
    return rules.match(TicketFacts(priority=ticket.priority, tier=tier, channel=ticket.channel, topic=ticket.topic))


async def recompute(conn: asyncpg.Connection, rules: SlaRules, ticket: ClockedTicket, tier: str | None,
                    now: datetime) -> SlaPolicy | None:
    """Priority or tier (anything policies match on) changed: running clocks follow the newly
    matching policy, counted from when they started, with paused time still credited. Returns that
    policy when it differs from the ticket's, for the caller to record on the ticket."""
    if ticket.status not in ("open", "pending"):
        return None  # solved or closed: nothing is owed, a new policy changes nothing
    policy = policy_for(rules, ticket, tier)
    if policy is None or policy.name == ticket.sla_policy:
        return None
    rows = await conn.fetch("SELECT target, started_at, paused_at, paused_for FROM sla_targets"
                            " WHERE ticket_id = $1 AND met_at IS NULL", ticket.id)
    running = {row["target"]: row for row in rows}
    for target, row in running.items():
        paused_for = row["paused_for"]
        if row["paused_at"] is not None:
            paused_for += elapsed_business_time(row["paused_at"], now, rules.calendar_of(policy))
        await _set_times(conn, rules, ticket.id, target, policy, row["started_at"], paused_for)
    if "resolution" not in running and ticket.solved_at is None:
        await _upsert_clock(conn, rules, ticket.id, policy, "resolution", ticket.created_at)
    if "first_response" not in running and ticket.first_responded_at is None:
        await _upsert_clock(conn, rules, ticket.id, policy, "first_response", ticket.created_at)
    if ticket.status == "pending":  # every clock, old or just started, stands still while pending
        await pause(conn, ticket.id, now)
    return policy


async def clocks_json(conn: asyncpg.Connection, ticket_id: int) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        "SELECT target, cycle, policy, started_at, warn_at, due_at, paused_at, met_at, warned_at, breached_at"
        " FROM sla_targets WHERE ticket_id = $1 ORDER BY array_position(ARRAY['first_response', 'next_response',"
        " 'resolution'], target)", ticket_id)
    return [{key: (value.isoformat() if isinstance(value, datetime) else value) for key, value in row.items()}
            for row in rows]
