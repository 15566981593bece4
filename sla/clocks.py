"""SLA clocks in PostgreSQL (`sla_targets`): start, stop, pause, resume and recompute.

Each function runs inside the caller's transaction, next to the ticket change that causes it, so
a clock can never disagree with the ticket it belongs to.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import asyncpg

from router.config import Config, SlaPolicy
from sla.calendar import elapsed_business_time
from sla.policy import TicketFacts, clock_times, match_policy, target_duration


def policy_for(config: Config, *, priority: str, tier: str | None, channel: str, topic: str | None) -> SlaPolicy | None:
    return match_policy(config.sla_policies, TicketFacts(priority=priority, tier=tier, channel=channel, topic=topic))


def _policy_named(config: Config, name: str) -> SlaPolicy | None:
    return next((p for p in config.sla_policies if p.name == name), None)


async def _upsert_clock(conn: asyncpg.Connection, config: Config, ticket_id: int, policy: SlaPolicy, target: str,
                        start: datetime, *, new_cycle: bool = False) -> None:
    duration = target_duration(policy, target)
    if duration is None:
        return
    times = clock_times(start, duration, policy.warn_at, config.calendars[policy.calendar])
    await conn.execute(
        "INSERT INTO sla_targets (ticket_id, target, policy, started_at, warn_at, due_at)"
        " VALUES ($1, $2, $3, $4, $5, $6)"
        " ON CONFLICT (ticket_id, target) DO UPDATE SET policy = EXCLUDED.policy,"
        " started_at = EXCLUDED.started_at, warn_at = EXCLUDED.warn_at, due_at = EXCLUDED.due_at,"
        " cycle = sla_targets.cycle + CASE WHEN $7 THEN 1 ELSE 0 END, paused_at = NULL, paused_for = '0',"
        " met_at = NULL, warned_at = NULL, breached_at = NULL",
        ticket_id, target, policy.name, start, times.warn_at, times.due_at, new_cycle)


async def start_ticket(conn: asyncpg.Connection, config: Config, ticket_id: int, policy: SlaPolicy | None,
                       now: datetime) -> datetime | None:
    """A new ticket (whose `sla_policy` is already `policy`): start its first-response and
    resolution clocks in one statement. Returns the first-response due time, which the
    acknowledgement promises, if the policy has one."""
    if policy is None:
        return None
    calendar = config.calendars[policy.calendar]
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


async def customer_wrote(conn: asyncpg.Connection, config: Config, ticket: asyncpg.Record, *, was_pending: bool,
                         now: datetime) -> None:
    """The customer wrote on an existing ticket: paused clocks resume, and a message after an agent
    reply starts a next-response clock (unless one is already running)."""
    if was_pending:
        await resume(conn, config, ticket["id"], now)
    if ticket["last_agent_reply_at"] is None or ticket["sla_policy"] is None:
        return
    policy = _policy_named(config, ticket["sla_policy"])
    if policy is None or policy.next_response is None:
        return
    running = await conn.fetchval(
        "SELECT met_at IS NULL FROM sla_targets WHERE ticket_id = $1 AND target = 'next_response'", ticket["id"])
    if not running:
        await _upsert_clock(conn, config, ticket["id"], policy, "next_response", now, new_cycle=True)


async def reopen(conn: asyncpg.Connection, config: Config, ticket: asyncpg.Record, now: datetime) -> None:
    """A solved or closed ticket came back: a new resolution cycle starts, and a new first-response
    cycle when nobody ever replied (next response follows the usual rule in `customer_wrote`)."""
    policy = _policy_named(config, ticket["sla_policy"]) if ticket["sla_policy"] else None
    if policy is None:
        return
    await _upsert_clock(conn, config, ticket["id"], policy, "resolution", now, new_cycle=True)
    if ticket["first_responded_at"] is None:
        await _upsert_clock(conn, config, ticket["id"], policy, "first_response", now, new_cycle=True)


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


async def resume(conn: asyncpg.Connection, config: Config, ticket_id: int, now: datetime) -> None:
    """Back from pending: credit the paused business time and move warn/due times accordingly."""
    rows = await conn.fetch("SELECT target, policy, started_at, paused_at, paused_for FROM sla_targets"
                            " WHERE ticket_id = $1 AND met_at IS NULL AND paused_at IS NOT NULL", ticket_id)
    for row in rows:
        policy = _policy_named(config, row["policy"])
        if policy is None:
            continue
        calendar = config.calendars[policy.calendar]
        paused_for = row["paused_for"] + elapsed_business_time(row["paused_at"], now, calendar)
        await _set_times(conn, ticket_id, row["target"], policy, row["started_at"], paused_for, calendar_config=config)


async def _set_times(conn: asyncpg.Connection, ticket_id: int, target: str, policy: SlaPolicy, started_at: datetime,
                     paused_for: timedelta, *, calendar_config: Config) -> None:
    duration = target_duration(policy, target)
    if duration is None:
        await conn.execute("DELETE FROM sla_targets WHERE ticket_id = $1 AND target = $2 AND met_at IS NULL"
                           " AND warned_at IS NULL AND breached_at IS NULL", ticket_id, target)
        return
    times = clock_times(started_at, duration, policy.warn_at, calendar_config.calendars[policy.calendar], paused_for)
    await conn.execute(
        "UPDATE sla_targets SET policy = $3, warn_at = $4, due_at = $5, paused_at = NULL, paused_for = $6"
        " WHERE ticket_id = $1 AND target = $2", ticket_id, target, policy.name, times.warn_at, times.due_at,
        paused_for)


async def recompute(conn: asyncpg.Connection, config: Config, ticket: asyncpg.Record, tier: str | None,
                    now: datetime) -> None:
    """Priority (or anything policies match on) changed: running clocks follow the new policy,
    counted from when they started, with paused time still credited."""
    if ticket["status"] not in ("open", "pending"):
        return  # solved or closed: nothing is owed, a new policy changes nothing
    policy = policy_for(config, priority=ticket["priority"], tier=tier, channel=ticket["channel"],
                        topic=ticket["topic"])
    if policy is None or policy.name == ticket["sla_policy"]:
        return
    await conn.execute("UPDATE tickets SET sla_policy = $2 WHERE id = $1", ticket["id"], policy.name)
    rows = await conn.fetch("SELECT target, started_at, paused_at, paused_for FROM sla_targets"
                            " WHERE ticket_id = $1 AND met_at IS NULL", ticket["id"])
    running = {row["target"]: row for row in rows}
    for target, row in running.items():
        paused_for = row["paused_for"]
        if row["paused_at"] is not None:
            paused_for += elapsed_business_time(row["paused_at"], now, config.calendars[policy.calendar])
        await _set_times(conn, ticket["id"], target, policy, row["started_at"], paused_for, calendar_config=config)
    if "resolution" not in running and ticket["solved_at"] is None:
        await _upsert_clock(conn, config, ticket["id"], policy, "resolution", ticket["created_at"])
    if "first_response" not in running and ticket["first_responded_at"] is None:
        await _upsert_clock(conn, config, ticket["id"], policy, "first_response", ticket["created_at"])
    if ticket["status"] == "pending":  # every clock, old or just started, stands still while pending
        await pause(conn, ticket["id"], now)


async def clocks_json(conn: asyncpg.Connection, ticket_id: int) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        "SELECT target, cycle, policy, started_at, warn_at, due_at, paused_at, met_at, warned_at, breached_at"
        " FROM sla_targets WHERE ticket_id = $1 ORDER BY array_position(ARRAY['first_response', 'next_response',"
        " 'resolution'], target)", ticket_id)
    return [{key: (value.isoformat() if isinstance(value, datetime) else value) for key, value in row.items()}
            for row in rows]
