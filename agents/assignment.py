"""Applying routing decisions to the database: route a ticket, drain queues, transfer, release.

Concurrency (several `router serve` processes on one database):
- a ticket is routed only while its row is locked (the ingest transaction holds it; the queue
  drainer takes rows with `FOR UPDATE SKIP LOCKED`, so two drainers never pick the same ticket);
- an agent's slot is taken with one conditional UPDATE (`agents.store.take_slot`), so the agent row
  lock serialises competing assignments and none can push the load past capacity, even when the
  snapshot the pure decision saw was stale. A refused slot just means "decide again without them".
Row locks rather than advisory locks: they are released with the transaction on every path and
need no key scheme.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

import asyncpg

from agents import store
from agents.routing import (
    AgentSnapshot,
    QueuedTicket,
    RoutingDecision,
    TicketNeeds,
    choose_agent,
    order_queue,
    plan_assignments,
)
from router import events

MAX_RETRIES = 5
DRAIN_BATCH = 200

_CANDIDATES_SQL = (
    "SELECT a.id, a.skills, a.languages, a.status, a.load, a.capacity, a.last_assigned_at, a.role, t.name AS team"
    " FROM agents a LEFT JOIN teams t ON t.id = a.team_id"
)


def _snapshot(row: asyncpg.Record) -> AgentSnapshot:
    return AgentSnapshot(
        id=row["id"], skills=frozenset(row["skills"]), languages=frozenset(row["languages"]),
        status=row["status"], load=row["load"], capacity=row["capacity"],
        last_assigned_at=row["last_assigned_at"], takes_routed_work=row["role"] != "lead", team=row["team"])


async def candidates_for(conn: asyncpg.Connection, needs: TicketNeeds) -> list[AgentSnapshot]:
    """Agents whose skills, language and team fit, whatever their status: the pure decision needs
    the unavailable ones too, to say why a ticket waits."""
    rows = await conn.fetch(
        _CANDIDATES_SQL + " WHERE ($1::text IS NULL OR $1 = ANY(a.skills))"
        " AND ($2::text IS NULL OR $2 = ANY(a.languages)) AND ($3::text IS NULL OR t.name = $3)"
        " AND a.role <> 'lead'",
        needs.skill, needs.language, needs.team)
    return [_snapshot(row) for row in rows]


async def available_agents(conn: asyncpg.Connection) -> list[AgentSnapshot]:
    rows = await conn.fetch(_CANDIDATES_SQL + " WHERE a.status = 'online' AND a.load < a.capacity"
                                              " AND a.role <> 'lead'")
    return [_snapshot(row) for row in rows]


async def needs_of(conn: asyncpg.Connection, ticket: asyncpg.Record) -> TicketNeeds:
    """Skill and language from classification; continuity from the customer's last assigned agent."""
    row = await conn.fetchrow(
        "SELECT (SELECT name FROM teams WHERE id = $3) AS team,"
        " (SELECT assignee_id FROM tickets WHERE customer_id = $1 AND id <> $2 AND assignee_id IS NOT NULL"
        "  ORDER BY updated_at DESC LIMIT 1) AS previous_agent_id",
        ticket["customer_id"], ticket["id"], ticket["team_id"])
    return TicketNeeds(skill=ticket["skill"], language=ticket["language"], team=row["team"],
                       previous_agent_id=row["previous_agent_id"])


async def _assign(conn: asyncpg.Connection, ticket_id: int, decision: RoutingDecision, now: datetime, *,
                  action: str = "assigned", actor_id: int | None = None) -> None:
    await conn.execute("UPDATE tickets SET assignee_id = $2, updated_at = $3 WHERE id = $1",
                       ticket_id, decision.agent_id, now)
    await store.log_routing(conn, ticket_id, action, decision.reason, now, agent_id=decision.agent_id,
                            actor_id=actor_id)
    await events.record(conn, ticket_id, "ticket.assigned", {"agent_id": decision.agent_id, "action": action}, now)


async def route_ticket(conn: asyncpg.Connection, ticket: asyncpg.Record, now: datetime) -> RoutingDecision:
    """Route a locked, unassigned ticket: assign the best agent or record why it waits in the queue."""
    needs = await needs_of(conn, ticket)
    candidates = await candidates_for(conn, needs)
    for _ in range(MAX_RETRIES):
        decision = choose_agent(needs, candidates)
        if decision.agent_id is None:
            break
        if await store.take_slot(conn, decision.agent_id, now):
            await _assign(conn, ticket["id"], decision, now)
            return decision
        # Someone else filled this agent's last slot since the snapshot: decide again without them.
        candidates = [replace(c, load=c.capacity) if c.id == decision.agent_id else c for c in candidates]
    else:
        decision = RoutingDecision(None, "queued: every eligible agent filled up while routing")
    await store.log_routing(conn, ticket["id"], "queued", decision.reason, now)
    await events.record(conn, ticket["id"], "ticket.queued", {"reason": decision.reason}, now)
    return decision


async def drain_queue(pool: asyncpg.Pool, now: datetime) -> int:
    """Assign waiting tickets to agents who can now take them: highest priority first, then oldest.
    Returns how many were assigned."""
    async with pool.acquire() as conn, conn.transaction():
        rows = await conn.fetch(
            "SELECT t.id, t.customer_id, t.team_id, t.skill, t.language, t.priority, t.created_at FROM tickets t"
            " WHERE t.assignee_id IS NULL AND t.status IN ('open', 'pending')"
            " ORDER BY array_position(ARRAY['urgent', 'high', 'normal', 'low'], t.priority), t.created_at, t.id"
            f" LIMIT {DRAIN_BATCH} FOR UPDATE OF t SKIP LOCKED")
        if not rows:
            return 0
        agents = await available_agents(conn)
        if not agents:
            return 0
        queue = order_queue([QueuedTicket(row["id"], row["priority"], row["created_at"], await needs_of(conn, row))
                             for row in rows])
        assigned = 0
        for ticket_id, decision in plan_assignments(queue, agents):
            if await store.take_slot(conn, decision.agent_id, now):
                await _assign(conn, ticket_id, replace(decision, reason=f"from queue: {decision.reason}"), now)
                assigned += 1
        return assigned


async def transfer(conn: asyncpg.Connection, ticket: asyncpg.Record, agent_id: int | None, reason: str,
                   now: datetime, actor_id: int | None) -> None:
    """A person moves a ticket to another agent (or back to the queue with `agent_id=None`). The
    history stays on the ticket; the new agent takes it even above capacity: a human decided."""
    active = ticket["status"] in ("open", "pending")
    if ticket["assignee_id"] is not None and active:
        await store.release_load(conn, ticket["assignee_id"])
    if agent_id is not None and active:
        await store.take_slot(conn, agent_id, now, force=True)
    action = "transferred" if agent_id is not None else "unassigned"
    await _assign(conn, ticket["id"], RoutingDecision(agent_id, reason), now, action=action, actor_id=actor_id)


async def release_unstarted(conn: asyncpg.Connection, agent_id: int, now: datetime) -> int:
    """An agent went offline: give back the tickets they have not answered yet, so they do not
    wait for someone who is gone (config `release_on_offline`)."""
    rows = await conn.fetch(
        "UPDATE tickets SET assignee_id = NULL, updated_at = $2 WHERE assignee_id = $1 AND status = 'open'"
        " AND first_responded_at IS NULL RETURNING id", agent_id, now)
    for row in rows:
        await store.release_load(conn, agent_id)
        await store.log_routing(conn, row["id"], "released", "agent went offline before replying", now,
                                agent_id=agent_id)
        await events.record(conn, row["id"], "ticket.released", {"agent_id": agent_id}, now)
    return len(rows)
