"""Customer merges decided by a person, from a suggestion or directly, and their undo (split).

Who may merge: a merge shows each record's history to whoever reaches the other (SPEC §2.4). Any
agent may fold a claimant known only by what they typed into the customer who owns the address
(it gives the claimant nothing: their only channel is that address); merging two customers who
both have proved identities, and undoing any merge, is for leads and admins.
"""

from __future__ import annotations

from agents.store import AgentIdentity
from router.core.actions import Context, drain_after_commit
from router.core.errors import Forbidden, InvalidInput, NotFound
from router.core.merge import Merged, Split, merge_customers, split
from router.core.store import customers, suggestions

MAX_REASON = 500


def _reason(text: str | None, default: str) -> str:
    reason = (text or "").strip() or default
    if len(reason) > MAX_REASON:
        raise InvalidInput(f"the reason is longer than {MAX_REASON} characters")
    return reason


async def merge(ctx: Context, actor: AgentIdentity, survivor_id: int, other_id: int, *,
                reason: str | None = None) -> Merged:
    """Fold customer `other_id` into `survivor_id` (see `core.merge`). Leads and admins only."""
    if not actor.is_lead:
        raise Forbidden("only leads and admins can merge customers")
    why = _reason(reason, f"merged by {actor.email}")
    now = ctx.clock()
    async with ctx.pool.acquire() as conn, conn.transaction():
        merged = await merge_customers(conn, ctx.config.sla, survivor_id, other_id, now, reason=why,
                                       actor_id=actor.id)
        await suggestions.close_between(conn, survivor_id, other_id, "merged", actor.id, why, now)
    await drain_after_commit(ctx, now)
    return merged


async def merge_suggestion(ctx: Context, actor: AgentIdentity, customer_id: int, suggestion_id: int, *,
                           reason: str | None = None) -> Merged:
    """Accept a suggestion: the claimant is folded into the customer who owns the identity."""
    now = ctx.clock()
    async with ctx.pool.acquire() as conn, conn.transaction():
        found = await suggestions.open_for_update(conn, suggestion_id)
        if customer_id not in (found.claimant_id, found.other_id):
            raise NotFound(f"no suggestion {suggestion_id} for customer {customer_id}")
        if not actor.is_lead and await customers.has_verified(conn, found.claimant_id):
            raise Forbidden("both customers have proved identities: only leads and admins can merge them")
        why = _reason(reason, f"{actor.email} accepted the suggestion: {found.reason}")
        merged = await merge_customers(conn, ctx.config.sla, found.other_id, found.claimant_id, now, reason=why,
                                       actor_id=actor.id, suggestion_id=found.id)
        await suggestions.decide(conn, found.id, "merged", actor.id, why, now)
        await suggestions.close_between(conn, found.other_id, found.claimant_id, "merged", actor.id, why, now)
    await drain_after_commit(ctx, now)
    return merged


async def dismiss_suggestion(ctx: Context, actor: AgentIdentity, customer_id: int, suggestion_id: int, *,
                             reason: str | None = None) -> None:
    """Not the same person (any agent): the suggestion is closed and never comes back for this pair
    and identity."""
    now = ctx.clock()
    async with ctx.pool.acquire() as conn, conn.transaction():
        found = await suggestions.open_for_update(conn, suggestion_id)
        if customer_id not in (found.claimant_id, found.other_id):
            raise NotFound(f"no suggestion {suggestion_id} for customer {customer_id}")
        await suggestions.decide(conn, found.id, "dismissed", actor.id,
                                 _reason(reason, f"dismissed by {actor.email}"), now)


async def undo_merge(ctx: Context, actor: AgentIdentity, merge_id: int, *, reason: str | None = None) -> Split:
    """Split a merge back (see `core.merge.split`). Leads and admins only."""
    if not actor.is_lead:
        raise Forbidden("only leads and admins can undo merges")
    why = _reason(reason, f"undone by {actor.email}")
    now = ctx.clock()
    async with ctx.pool.acquire() as conn, conn.transaction():
        done = await split(conn, ctx.config.sla, merge_id, now, why=why, actor_id=actor.id,
                           reopen_window=ctx.config.service.reopen_window)
    await drain_after_commit(ctx, now)
    return done
