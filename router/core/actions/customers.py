"""Customer merges decided by a person (one customer known under two records)."""

from __future__ import annotations

from agents.store import AgentIdentity
from router.core.actions import Context
from router.core.errors import Forbidden
from router.core.merge import merge_customers


async def merge(ctx: Context, actor: AgentIdentity, survivor_id: int, other_id: int) -> None:
    """Fold customer `other_id` into `survivor_id` (see `core.merge`). Leads and admins only: a
    merge shows each record's history to whoever reaches the other (SPEC §2.4)."""
    if not actor.is_lead:
        raise Forbidden("only leads and admins can merge customers")
    async with ctx.pool.acquire() as conn, conn.transaction():
        await merge_customers(conn, ctx.config.sla, survivor_id, other_id, ctx.clock(),
                              reason=f"merged by {actor.email}", actor_id=actor.id)
