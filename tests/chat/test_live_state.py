"""What the widget shows besides messages, pushed live: who has the ticket (an agent joining or taking
over) and whether they are typing a reply right now."""

from __future__ import annotations

import asyncpg

from agents.store import AgentIdentity
from router.config import Config
from router.core.actions import Context
from router.core.actions import presence as presence_actions
from router.core.clock import ManualClock
from tests.chat.conftest import Serving, Visitor, api


async def test_agent_joined_and_typing_reach_the_widget(start: Serving, pool: asyncpg.Pool, clock: ManualClock,
                                                        config: Config) -> None:
    served = await start()
    visitor = Visitor(served.ws_url)
    await visitor.open()
    first = await visitor.until(lambda f: f["type"] == "state")
    assert (first["ref"], first["agent"], first["typing"]) == (None, None, None)
    await visitor.send({"type": "message", "id": "state-question", "text": "I was charged twice, please refund"})
    ref = (await visitor.until(lambda f: f["type"] == "sent"))["ref"]
    routed = await visitor.until(lambda f: f["type"] == "state" and f["agent"] is not None)
    assert routed["ref"] == ref and routed["due"]

    async with api(served) as lead:
        moved = await lead.post(f"/api/v1/tickets/{ref}/assign", json={"agent": "ben@example.com", "reason": "load"})
        assert moved.status_code == 200, moved.text
    taken = await visitor.until(lambda f: f["type"] == "state" and f["agent"] != routed["agent"])
    assert taken["agent"].startswith("Ben") and not taken["typing"]

    async with pool.acquire() as conn:
        ben_id = await conn.fetchval("SELECT id FROM agents WHERE email = 'ben@example.com'")
    ben = AgentIdentity(ben_id, "ben@example.com", "agent")
    await presence_actions.report(Context(pool, config, clock), ben, ref, "page-0001-typing", "typing")
    typing = await visitor.until(lambda f: f["type"] == "state" and f["typing"])
    assert typing["typing"].startswith("Ben")
    await presence_actions.report(Context(pool, config, clock), ben, ref, "page-0001-typing", "left")
    assert not (await visitor.until(lambda f: f["type"] == "state"))["typing"]
    await visitor.close()
