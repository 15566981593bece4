"""Transfers: a person hands a ticket to another agent, or back to the queue, with a reason."""

from __future__ import annotations

from agents import assignment
from agents import store as agent_store
from agents.store import AgentIdentity
from router.core.actions import Context, drain_after_commit, ticket_for_update
from router.core.errors import Conflict, Forbidden, InvalidInput


async def transfer(ctx: Context, actor: AgentIdentity, ref: str, agent_key: str | None,
                   reason: str | None = None) -> None:
    """Give the ticket `ref` to the agent `agent_key` (id or email), or back to its queue with None.
    Agents move their own or unassigned tickets; leads and admins any, and only they may hand one
    to a lead."""
    now = ctx.clock()
    async with ctx.pool.acquire() as conn, conn.transaction():
        ticket = await ticket_for_update(conn, ref)
        if not actor.is_lead and ticket.assignee_id not in (None, actor.id):
            raise Forbidden("agents may transfer their own or unassigned tickets; ask a lead for the others")
        agent_id = None
        if agent_key is not None:
            row = await agent_store.find(conn, agent_key)
            if row is None:
                raise InvalidInput(f"no agent {agent_key!r}")
            if not row["active"]:
                raise Conflict(f"{row['email']} is deactivated and takes no tickets")
            if row["role"] == "lead" and not actor.is_lead:
                raise Forbidden("only leads and admins can hand a ticket to a lead")
            agent_id = row["id"]
        default = f"transferred by {actor.email}" if agent_id else f"returned to the queue by {actor.email}"
        reason = reason.strip() if reason and reason.strip() else default
        await assignment.transfer(conn, ticket, agent_id, reason, now, actor.id)
    if agent_id is None:
        await drain_after_commit(ctx, now)
