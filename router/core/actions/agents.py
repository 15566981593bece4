"""Agent status and profile edits: who may change what, and the queue drain that follows."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from agents import assignment
from agents import store as agent_store
from agents.config import AGENT_STATUSES
from agents.store import AgentIdentity
from router.core.actions import Context, drain_after_commit
from router.core.errors import Conflict, Forbidden, InvalidInput, NotFound
from router.core.inbound import text_value
from router.core.store import events

EDITABLE = frozenset({"status", "skills", "languages", "capacity", "chat_capacity"})


def _validated(changes: Mapping[str, Any]) -> dict[str, Any]:
    if not changes or not set(changes) <= EDITABLE:
        raise InvalidInput(f"send some of: {', '.join(sorted(EDITABLE))}")
    status = changes.get("status")
    if "status" in changes and status not in AGENT_STATUSES:
        raise InvalidInput(f"`status` must be one of {', '.join(AGENT_STATUSES)}")
    for key in ("skills", "languages"):
        if key in changes:
            if not isinstance(changes[key], list) or len(changes[key]) > 100:
                raise InvalidInput(f"`{key}` must be a list of strings")
            for value in changes[key]:
                text_value(value, key, limit=100, required=True)
    for key in ("capacity", "chat_capacity"):
        value = changes.get(key)
        if key in changes and (not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 1000):
            raise InvalidInput(f"`{key}` must be a whole number from 0 to 1000")
    return dict(changes)


async def update_agent(ctx: Context, actor: AgentIdentity, agent_key: str, changes: Mapping[str, Any]) -> int:
    """Agents set their own status, leads anyone's; only admins edit skills, languages and
    capacity. Going offline gives back unanswered tickets when `release_on_offline` is set.
    Returns the agent's id."""
    wanted = _validated(changes)
    if set(wanted) - {"status"} and not actor.is_admin:
        raise Forbidden("only admins can change skills, languages or capacity")
    now = ctx.clock()
    async with ctx.pool.acquire() as conn, conn.transaction():
        row = await agent_store.find(conn, agent_key)
        if row is None:
            raise NotFound(f"no agent {agent_key!r}")
        if not actor.is_lead and actor.id != row["id"]:
            raise Forbidden("agents may change only their own status")
        if not row["active"] and wanted.get("status") in ("online", "away"):
            raise Conflict(f"{row['email']} is deactivated: reactivate them in /admin first")
        if wanted.get("status") == "offline" and ctx.config.service.release_on_offline:
            # Tickets first, then the agent row: the lock order every other change uses.
            await assignment.release_unstarted(conn, row["id"], now)
        await agent_store.update(conn, row["id"], wanted)
        await events.record(conn, None, "agent.updated", {"agent_id": row["id"], **wanted}, now)
    await drain_after_commit(ctx, now)
    agent_id: int = row["id"]
    return agent_id
