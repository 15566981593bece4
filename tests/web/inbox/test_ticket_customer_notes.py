"""Notes about a customer stay with the person: after a merge the survivor shows the notes written on
either record, and a note written on a merged record is kept on the survivor."""

from __future__ import annotations

import pytest

from agents.store import AgentIdentity
from router.core.actions.customer_notes import add_customer_note
from router.core.errors import InvalidInput, NotFound
from router.core.inbound import Identity, InboundMessage
from router.core.pipeline import Pipeline
from router.core.store import customer_notes


async def test_notes_follow_merges(client, auth, pool, config, clock, app):
    pipeline = Pipeline(config, clock)
    await pipeline.ingest(pool, InboundMessage("email", (Identity("email", "k@x.example"),), "hi", external_id="a@x"))
    await pipeline.ingest(pool, InboundMessage("chat", (Identity("chat", "v-1"),), "hello again"))
    survivor, other = [row["id"] for row in await pool.fetch("SELECT id FROM customers ORDER BY id")]
    ctx = app.state.services.actions()
    aiko = AgentIdentity(1, "aiko@example.com", "agent")
    await add_customer_note(ctx, aiko, survivor, "VIP contract until March")
    await add_customer_note(ctx, aiko, other, "Writes from the chat at night")
    merged = await client.post(f"/api/v1/customers/{survivor}/merge", json={"other": other}, headers=auth)
    assert merged.status_code == 200, merged.text
    late = await add_customer_note(ctx, aiko, other, "Written on the merged record's page")
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT customer_id FROM customer_notes WHERE id = $1", late) == survivor
        notes = await customer_notes.for_customer(conn, survivor)
    assert [n.body for n in notes] == ["Written on the merged record's page", "Writes from the chat at night",
                                       "VIP contract until March"]
    assert notes[1].customer_id == other and notes[0].author_name == "Aiko Tanaka"


async def test_a_note_needs_text_and_a_customer(pool, app):
    ctx = app.state.services.actions()
    aiko = AgentIdentity(1, "aiko@example.com", "agent")
    with pytest.raises(InvalidInput):
        await add_customer_note(ctx, aiko, 1, "  ")
    with pytest.raises(InvalidInput):
        await add_customer_note(ctx, aiko, 1, "x" * (customer_notes.MAX_NOTE_CHARS + 1))
    with pytest.raises(NotFound):
        await add_customer_note(ctx, aiko, 999, "nobody")
