"""Notes about a customer ("prefers LINE", "contract renews in March"): any agent may add one; the
customer never sees them."""

from __future__ import annotations

from agents.store import AgentIdentity
from router.core.actions import Context, agent_text
from router.core.errors import NotFound
from router.core.store import customer_notes, events


async def add_customer_note(ctx: Context, actor: AgentIdentity, customer_id: int, text: str) -> int:
    """Add a note about the customer `customer_id` (kept on the record they were merged into, if
    they were); returns its id."""
    text = agent_text(text, customer_notes.MAX_NOTE_CHARS, "customer note")
    now = ctx.clock()
    async with ctx.pool.acquire() as conn, conn.transaction():
        target = await customer_notes.survivor(conn, customer_id)
        if target is None:
            raise NotFound(f"no customer {customer_id}")
        note_id = await customer_notes.add(conn, target, actor.id, text, now)
        await events.record(conn, None, "customer.note_added",
                            {"customer_id": target, "note_id": note_id, "actor": actor.id}, now)
    return note_id
