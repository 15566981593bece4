"""Status and priority changes: what they mean for the agent's slots, the SLA clocks and the queue."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg

from agents import store as agent_store
from agents.store import AgentIdentity
from router.core.actions import Context, drain_after_commit, ticket_for_update
from router.core.errors import InvalidInput
from router.core.refs import PRIORITIES, STATUSES, Priority, Status, as_priority, as_status, is_active
from router.core.store import customers, events, tickets
from router.core.store.tickets import Ticket
from sla import clocks
from sla.policy import SlaRules


async def update(ctx: Context, actor: AgentIdentity, ref: str, *, status: str | None = None,
                 priority: str | None = None) -> None:
    """Set the ticket's status and/or priority."""
    if status is None and priority is None:
        raise InvalidInput("send `status` and/or `priority`")
    new_status = as_status(status) if status is not None else None
    if status is not None and new_status is None:
        raise InvalidInput(f"`status` must be one of {', '.join(STATUSES)}")
    new_priority = as_priority(priority) if priority is not None else None
    if priority is not None and new_priority is None:
        raise InvalidInput(f"`priority` must be one of {', '.join(PRIORITIES)}")
    now = ctx.clock()
    async with ctx.pool.acquire() as conn, conn.transaction():
        ticket = await ticket_for_update(conn, ref)
        changes: dict[str, Any] = {}
        if new_status is not None and new_status != ticket.status:
            await _set_status(conn, ctx.config.sla, ticket, new_status, now)
            changes["status"] = [ticket.status, new_status]
        if new_priority is not None and new_priority != ticket.priority:
            await _set_priority(conn, ctx.config.sla, ticket, new_priority, now)
            changes["priority"] = [ticket.priority, new_priority]
        if changes:
            await events.record(conn, ticket.id, "ticket.updated", {"changes": changes, "actor": actor.id}, now)
    if status in ("solved", "closed"):
        await drain_after_commit(ctx, now)  # the assignee has a free slot now


async def _set_status(conn: asyncpg.Connection, rules: SlaRules, ticket: Ticket, status: Status,
                      now: datetime) -> None:
    """Leaving open/pending frees the assignee's slot; coming back takes it again (even above
    capacity: the agent already owns this conversation). SLA clocks pause while pending, stop when
    solved/closed, start new cycles when the ticket comes back."""
    was_active, now_active = ticket.active, is_active(status)
    if ticket.assignee_id is not None and was_active and not now_active:
        await agent_store.release_load(conn, ticket.assignee_id)
    if ticket.assignee_id is not None and now_active and not was_active:
        await agent_store.add_load(conn, ticket.assignee_id)
    await tickets.set_status(conn, ticket.id, status, now)
    if not now_active:
        await clocks.stop_all(conn, ticket.id, now)
    elif not was_active:
        await clocks.reopen(conn, rules, ticket, now)
    elif status == "open":
        await clocks.resume(conn, rules, ticket.id, now)
    if status == "pending":
        await clocks.pause(conn, ticket.id, now)


async def _set_priority(conn: asyncpg.Connection, rules: SlaRules, ticket: Ticket, priority: Priority,
                        now: datetime) -> None:
    """A new priority may match another SLA policy: the running clocks follow it."""
    current = await tickets.set_priority(conn, ticket.id, priority, now)
    tier = await customers.tier_of(conn, ticket.customer_id)
    policy = await clocks.recompute(conn, rules, current, tier, now)
    if policy is not None:
        await tickets.set_sla_policy(conn, ticket.id, policy.name)
