"""Applying routing decisions to the database: route a ticket, drain queues, transfer, release.

Concurrency (several `router serve` processes on one database):
- a ticket is routed only while its row is locked (the ingest transaction holds it; the queue
  drainer takes rows with `FOR UPDATE SKIP LOCKED`, so two drainers never pick the same ticket);
- an agent's slot is taken with one conditional UPDATE (in `_ASSIGN_SQL`), so the agent row
  lock serialises competing assignments and none can push the load past capacity, even when the
  snapshot the pure decision saw was stale. A refused slot just means "decide again without them".
Row locks rather than advisory locks: they are released with the transaction on every path and
need no key scheme.

Taking a slot writes the agent's load, the ticket's assignee, the routing log and the event in one
statement (`_ASSIGN_SQL`): they must commit together, and this is the ingest hot path. This module
is therefore the writer of `tickets.assignee_id`; the rest of the ticket row belongs to the core's
ticket store.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Protocol

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

MAX_RETRIES = 5
DRAIN_BATCH = 200

_CANDIDATES_SQL = (
    "SELECT a.id, a.skills, a.languages, a.status, a.load, a.capacity, a.last_assigned_at, a.role, t.name AS team"
    " FROM agents a LEFT JOIN teams t ON t.id = a.team_id"
)
_ASSIGN_SQL = (
    "WITH slot AS (UPDATE agents SET load = load + 1, last_assigned_at = $3"
    "  WHERE id = $2 AND ($6 OR (status = 'online' AND load < capacity)) RETURNING id),"
    " t AS (UPDATE tickets SET assignee_id = $2, updated_at = $3 WHERE id = $1 AND EXISTS (SELECT 1 FROM slot)),"
    " l AS (INSERT INTO routing_log (ticket_id, action, agent_id, actor_id, reason, created_at)"
    "  SELECT $1, $4, $2, $7, $5, $3 FROM slot)"
    " INSERT INTO events (ticket_id, kind, payload, created_at)"
    " SELECT $1, 'ticket.assigned', jsonb_build_object('agent_id', $2::bigint, 'action', $4::text), $3 FROM slot"
    " RETURNING 1"
)


class RoutableTicket(Protocol):
    """What routing needs to know about a ticket (the core's `Ticket` has these fields)."""

    @property
    def id(self) -> int: ...
    @property
    def customer_id(self) -> int: ...
    @property
    def team_id(self) -> int | None: ...
    @property
    def skill(self) -> str | None: ...
    @property
    def language(self) -> str: ...


class AssignedTicket(Protocol):
    @property
    def id(self) -> int: ...
    @property
    def status(self) -> str: ...
    @property
    def assignee_id(self) -> int | None: ...


def _snapshot(row: asyncpg.Record) -> AgentSnapshot:
    return AgentSnapshot(
        id=row["id"], skills=frozenset(row["skills"]), languages=frozenset(row["languages"]),
        status=row["status"], load=row["load"], capacity=row["capacity"],
        last_assigned_at=row["last_assigned_at"], takes_routed_work=row["role"] != "lead", team=row["team"])


async def available_agents(conn: asyncpg.Connection) -> list[AgentSnapshot]:
    rows = await conn.fetch(_CANDIDATES_SQL + " WHERE a.status = 'online' AND a.load < a.capacity"
                                              " AND a.role <> 'lead'")
    return [_snapshot(row) for row in rows]


_NEEDS_SQL = (
    "SELECT x.ticket_id, (SELECT name FROM teams WHERE id = x.team_id) AS team,"
    " (SELECT assignee_id FROM tickets p WHERE p.customer_id = x.customer_id AND p.id <> x.ticket_id"
    "  AND p.assignee_id IS NOT NULL ORDER BY p.updated_at DESC LIMIT 1) AS previous_agent_id"
    " FROM unnest($1::bigint[], $2::bigint[], $3::bigint[]) AS x(ticket_id, customer_id, team_id)"
)
"""Per ticket: its team's name, and the agent who last helped the customer on another ticket (continuity)."""


async def _needs(conn: asyncpg.Connection, tickets: Sequence[RoutableTicket]) -> dict[int, TicketNeeds]:
    """The needs of many tickets in one round trip."""
    rows = await conn.fetch(_NEEDS_SQL, [t.id for t in tickets], [t.customer_id for t in tickets],
                            [t.team_id for t in tickets])
    found = {row["ticket_id"]: row for row in rows}
    return {t.id: TicketNeeds(skill=t.skill, language=t.language, team=found[t.id]["team"],
                              previous_agent_id=found[t.id]["previous_agent_id"]) for t in tickets}


async def _needs_and_candidates(conn: asyncpg.Connection,
                                ticket: RoutableTicket) -> tuple[TicketNeeds, list[AgentSnapshot]]:
    """One round trip for the ticket's needs and the agents whose skills, language and team fit,
    whatever their status: the pure decision needs the unavailable ones too, to say why a ticket waits."""
    rows = await conn.fetch(
        f"WITH need AS ({_NEEDS_SQL})"
        " SELECT need.team AS ticket_team, need.previous_agent_id, c.* FROM need LEFT JOIN LATERAL ("
        + _CANDIDATES_SQL + " WHERE ($4::text IS NULL OR $4 = ANY(a.skills))"
        " AND ($5::text IS NULL OR $5 = ANY(a.languages)) AND (need.team IS NULL OR t.name = need.team)"
        " AND a.role <> 'lead') c ON true",
        [ticket.id], [ticket.customer_id], [ticket.team_id], ticket.skill, ticket.language)
    needs = TicketNeeds(skill=ticket.skill, language=ticket.language, team=rows[0]["ticket_team"],
                        previous_agent_id=rows[0]["previous_agent_id"])
    return needs, [_snapshot(row) for row in rows if row["id"] is not None]


async def _take_and_assign(conn: asyncpg.Connection, ticket_id: int, decision: RoutingDecision, now: datetime, *,
                           action: str = "assigned", force: bool = False, actor_id: int | None = None) -> bool:
    """Take a slot on the agent and assign the ticket (with its log and event) in one statement;
    False, and nothing changed, when the agent is no longer online or has no free slot."""
    taken = await conn.fetchval(_ASSIGN_SQL, ticket_id, decision.agent_id, now, action, decision.reason, force,
                                actor_id)
    return taken is not None


async def _log_unassigned(conn: asyncpg.Connection, ticket_id: int, action: str, reason: str, now: datetime, *,
                          agent_id: int | None = None, actor_id: int | None = None) -> None:
    await conn.execute(
        "WITH l AS (INSERT INTO routing_log (ticket_id, action, agent_id, actor_id, reason, created_at)"
        " VALUES ($1, $2, $3, $4, $5, $6))"
        " INSERT INTO events (ticket_id, kind, payload, created_at)"
        " VALUES ($1, 'ticket.' || $2, jsonb_build_object('reason', $5::text, 'agent_id', $3::bigint), $6)",
        ticket_id, action, agent_id, actor_id, reason, now)


async def route_ticket(conn: asyncpg.Connection, ticket: RoutableTicket, now: datetime) -> RoutingDecision:
    """Route a locked, unassigned ticket: assign the best agent or record why it waits in the queue."""
    needs, candidates = await _needs_and_candidates(conn, ticket)
    for _ in range(MAX_RETRIES):
        decision = choose_agent(needs, candidates)
        if decision.agent_id is None:
            break
        if await _take_and_assign(conn, ticket.id, decision, now):
            return decision
        # Someone else filled this agent's last slot since the snapshot: decide again without them.
        candidates = [replace(c, load=c.capacity) if c.id == decision.agent_id else c for c in candidates]
    else:
        decision = RoutingDecision(None, "queued: every eligible agent filled up while routing")
    await _log_unassigned(conn, ticket.id, "queued", decision.reason, now)
    return decision


@dataclass(frozen=True)
class _Waiting:
    id: int
    customer_id: int
    team_id: int | None
    skill: str | None
    language: str


class ReopenedTicket(RoutableTicket, Protocol):
    @property
    def assignee_id(self) -> int | None: ...


async def route_reopened(conn: asyncpg.Connection, ticket: ReopenedTicket, now: datetime) -> RoutingDecision:
    """A solved ticket came back: to its agent when they are online with a free slot (they know the
    conversation), else routed like new work — never pushing anyone above capacity."""
    if ticket.assignee_id is not None:
        back = RoutingDecision(ticket.assignee_id, "customer wrote again: back to their agent")
        if await _take_and_assign(conn, ticket.id, back, now, action="reopened"):
            return back
        await conn.execute("UPDATE tickets SET assignee_id = NULL, updated_at = $2 WHERE id = $1", ticket.id, now)
        await _log_unassigned(conn, ticket.id, "unassigned", "reopened while their agent was away or at capacity",
                              now, agent_id=ticket.assignee_id)
    return await route_ticket(conn, ticket, now)


async def drain_queue(pool: asyncpg.Pool, now: datetime, urgency_order: Sequence[str]) -> int:
    """Assign waiting tickets to agents who can now take them: most urgent first (`urgency_order`
    lists the priorities, most urgent first), then oldest. Returns how many were assigned."""
    async with pool.acquire() as conn, conn.transaction():
        rows = await conn.fetch(
            "SELECT t.id, t.customer_id, t.team_id, t.skill, t.language, t.created_at,"
            " array_position($1::text[], t.priority) AS urgency FROM tickets t"
            " WHERE t.assignee_id IS NULL AND t.status IN ('open', 'pending')"
            " ORDER BY urgency, t.created_at, t.id"
            f" LIMIT {DRAIN_BATCH} FOR UPDATE OF t SKIP LOCKED", list(urgency_order))
        if not rows:
            return 0
        agents = await available_agents(conn)
        if not agents:
            return 0
        waiting = [_Waiting(r["id"], r["customer_id"], r["team_id"], r["skill"], r["language"]) for r in rows]
        needs = await _needs(conn, waiting)
        queue = order_queue([QueuedTicket(row["id"], row["urgency"], row["created_at"], needs[row["id"]])
                             for row in rows])
        assigned = 0
        # Applied in agent order (the plan itself keeps queue order): agent rows are then always
        # locked in the same order, so two drains cannot deadlock.
        plan = sorted(plan_assignments(queue, agents), key=lambda step: step[1].agent_id or 0)
        for ticket_id, decision in plan:
            queued = replace(decision, reason=f"from queue: {decision.reason}")
            assigned += await _take_and_assign(conn, ticket_id, queued, now)
        return assigned


async def transfer(conn: asyncpg.Connection, ticket: AssignedTicket, agent_id: int | None, reason: str,
                   now: datetime, actor_id: int | None) -> None:
    """A person moves a ticket to another agent (or back to the queue with `agent_id=None`). The
    history stays on the ticket; the new agent takes it even above capacity: a human decided."""
    active = ticket.status in ("open", "pending")
    involved = sorted({a for a in (ticket.assignee_id, agent_id) if a is not None})
    # Both agents' rows, in id order, before changing either: crossing transfers cannot deadlock.
    await conn.execute("SELECT 1 FROM agents WHERE id = ANY($1::bigint[]) ORDER BY id FOR UPDATE", involved)
    if ticket.assignee_id is not None and active:
        await store.release_load(conn, ticket.assignee_id)
    if agent_id is not None and active:
        await _take_and_assign(conn, ticket.id, RoutingDecision(agent_id, reason), now, action="transferred",
                               force=True, actor_id=actor_id)
        return
    await conn.execute("UPDATE tickets SET assignee_id = $2, updated_at = $3 WHERE id = $1",
                       ticket.id, agent_id, now)
    await _log_unassigned(conn, ticket.id, "transferred" if agent_id else "unassigned", reason, now,
                          agent_id=agent_id, actor_id=actor_id)


async def release_unstarted(conn: asyncpg.Connection, agent_id: int, now: datetime) -> int:
    """An agent went offline: give back the tickets they have not answered yet, so they do not
    wait for someone who is gone (config `release_on_offline`)."""
    rows = await conn.fetch(
        "UPDATE tickets SET assignee_id = NULL, updated_at = $2 WHERE assignee_id = $1 AND status = 'open'"
        " AND first_responded_at IS NULL RETURNING id", agent_id, now)
    for row in rows:
        await store.release_load(conn, agent_id)
        await _log_unassigned(conn, row["id"], "released", "agent went offline before replying", now,
                              agent_id=agent_id)
    return len(rows)
