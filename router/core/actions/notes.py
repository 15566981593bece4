"""Internal notes: agents talk to each other on the ticket; the customer never sees them."""

from __future__ import annotations

import uuid

from agents.store import AgentIdentity
from router.core.actions import Context, agent_text, ticket_for_update
from router.core.store import tickets
from router.core.store.tickets import NewMessage

MAX_NOTE_CHARS = 50_000


async def add_note(ctx: Context, actor: AgentIdentity, ref: str, text: str) -> int:
    """Add a note to the ticket `ref`; returns its message id."""
    text = agent_text(text, MAX_NOTE_CHARS, "note")
    now = ctx.clock()
    async with ctx.pool.acquire() as conn, conn.transaction():
        ticket = await ticket_for_update(conn, ref)
        note = NewMessage(channel="note", direction="note", external_id=f"note:{uuid.uuid4().hex}", body_text=text,
                          created_at=now, author_agent_id=actor.id, sender_name=actor.email)
        stored = await tickets.insert_message(conn, ticket, note, [("note.added", {})])
        await tickets.touch(conn, ticket.id, now)
    assert stored.message_id is not None  # a fresh random external id never collides
    return stored.message_id
