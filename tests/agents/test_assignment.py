"""Routing on the real database: expertise, capacity, queues, priority, transfers, concurrency."""

from __future__ import annotations

import asyncio
import random
from datetime import timedelta

from router import db
from router.core import actions
from router.core.inbound import InboundMessage, email_identity
from router.core.pipeline import Pipeline
from tests.conftest import post_message


def message(text: str, email: str, **kw) -> InboundMessage:
    return InboundMessage(channel="api", identities=(email_identity(email),), text=text, **kw)


async def ticket(client, auth, ref):
    return (await client.get(f"/api/v1/tickets/{ref}", headers=auth)).json()


async def set_agent(client, auth, email, **changes):
    response = await client.patch(f"/api/v1/agents/{email}", json=changes, headers=auth)
    assert response.status_code == 200, response.text
    return response.json()


async def test_japanese_billing_question_goes_to_japanese_billing_agent(client, auth):
    ref = await post_message(client, auth, "先月の請求について返金をお願いします", email="sato@example.jp")
    detail = await ticket(client, auth, ref)
    assert (detail["language"], detail["topic"], detail["assignee"]) == ("ja", "billing", "aiko@example.com")
    assert detail["routing_log"][0]["action"] == "assigned"
    assert detail["routing_log"][0]["reason"]


async def test_english_technical_goes_to_english_technical_agent(client, auth):
    ref = await post_message(client, auth, "I get an error when I login", email="tom@example.com")
    assert (await ticket(client, auth, ref))["assignee"] == "ben@example.com"


async def test_at_capacity_waits_in_queue_then_assigned_when_slot_frees(client, auth):
    await set_agent(client, auth, "aiko@example.com", capacity=1)
    first = await post_message(client, auth, "請求書の金額が違います", email="a@example.jp")
    second = await post_message(client, auth, "返金はいつですか", email="b@example.jp")
    assert (await ticket(client, auth, first))["assignee"] == "aiko@example.com"
    waiting = await ticket(client, auth, second)
    assert waiting["assignee"] is None
    assert waiting["routing_log"][-1]["action"] == "queued"
    assert "at capacity" in waiting["routing_log"][-1]["reason"]

    await client.patch(f"/api/v1/tickets/{first}", json={"status": "solved"}, headers=auth)
    assigned = await ticket(client, auth, second)
    assert assigned["assignee"] == "aiko@example.com"
    assert assigned["routing_log"][-1]["reason"].startswith("from queue")


async def test_urgent_vip_ticket_jumps_the_queue(client, auth, pool, clock):
    await set_agent(client, auth, "aiko@example.com", capacity=1)
    busy = await post_message(client, auth, "請求について", email="first@example.jp")
    older = await post_message(client, auth, "請求書を再発行してください", email="older@example.jp")
    clock.advance(timedelta(minutes=5))
    async with pool.acquire() as conn:
        await conn.execute("INSERT INTO customers (name, tier) VALUES ('VIP', 'vip')")
        vip_id = await conn.fetchval("SELECT max(id) FROM customers")
        await conn.execute("INSERT INTO customer_identities (customer_id, kind, value) VALUES ($1, 'email', $2)",
                           vip_id, "vip@example.jp")
    urgent = await post_message(client, auth, "至急！請求が二重になっています", email="vip@example.jp")
    assert (await ticket(client, auth, urgent))["priority"] == "urgent"
    assert (await ticket(client, auth, urgent))["assignee"] is None

    await client.patch(f"/api/v1/tickets/{busy}", json={"status": "solved"}, headers=auth)
    assert (await ticket(client, auth, urgent))["assignee"] == "aiko@example.com"
    assert (await ticket(client, auth, older))["assignee"] is None


async def test_agent_coming_online_takes_waiting_tickets(client, auth):
    await set_agent(client, auth, "chie@example.com", status="offline")
    ref = await post_message(client, auth, "アプリでエラーが出ます", email="k@example.jp")
    queued = await ticket(client, auth, ref)
    assert queued["assignee"] is None and "offline" in queued["routing_log"][-1]["reason"]
    await set_agent(client, auth, "chie@example.com", status="online")
    assert (await ticket(client, auth, ref))["assignee"] == "chie@example.com"


async def test_continuity_prefers_agent_who_helped_before(client, auth, clock):
    first = await post_message(client, auth, "I was charged twice", email="loyal@example.com")
    assert (await ticket(client, auth, first))["assignee"] == "aiko@example.com"  # least recently assigned
    await client.patch(f"/api/v1/tickets/{first}", json={"status": "closed"}, headers=auth)
    await post_message(client, auth, "invoice question", email="other@example.com")  # goes to ben (aiko was just used)
    second = await post_message(client, auth, "Another billing question about my invoice", email="loyal@example.com")
    detail = await ticket(client, auth, second)
    assert detail["assignee"] == "aiko@example.com"
    assert detail["routing_log"][-1]["reason"].startswith("continuity")


async def test_transfer_keeps_history_and_reason(client, auth):
    ref = await post_message(client, auth, "I get an error", email="t@example.com")
    response = await client.post(f"/api/v1/tickets/{ref}/assign", headers=auth,
                                 json={"agent": "chie@example.com", "reason": "needs the Japanese backend team"})
    assert response.status_code == 200
    detail = response.json()
    assert detail["assignee"] == "chie@example.com"
    assert [e["action"] for e in detail["routing_log"]] == ["assigned", "transferred"]
    assert detail["routing_log"][-1]["reason"] == "needs the Japanese backend team"
    agents = {a["email"]: a for a in (await client.get("/api/v1/agents", headers=auth)).json()["agents"]}
    assert agents["ben@example.com"]["load"] == 0 and agents["chie@example.com"]["load"] == 1
    bad = await client.post(f"/api/v1/tickets/{ref}/assign", headers=auth, json={"agent": "nobody@x.io"})
    assert bad.status_code == 422


async def test_agent_can_only_set_own_status(client, auth, pool):
    from agents.store import token_digest

    async with pool.acquire() as conn:
        await conn.execute("UPDATE agents SET token_hash = $1 WHERE email = 'ben@example.com'", token_digest("ben-t"))
    ben = {"Authorization": "Bearer ben-t"}

    async def patch(target: str, changes: dict) -> int:
        return (await client.patch(f"/api/v1/agents/{target}", json=changes, headers=ben)).status_code

    assert await patch("ben@example.com", {"status": "away"}) == 200
    assert await patch("aiko@example.com", {"status": "away"}) == 403
    assert await patch("ben@example.com", {"capacity": 50}) == 403
    assert await patch("ben@example.com", {"status": "asleep"}) == 422


async def test_release_on_offline_returns_unstarted_tickets(config, pool, clock):
    from dataclasses import replace

    from router.app import create_app

    released = replace(config, service=replace(config.service, release_on_offline=True))
    import httpx

    from tests.conftest import API_TOKEN

    app = create_app(released, pool=pool, clock=clock)
    auth = {"Authorization": f"Bearer {API_TOKEN}"}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        ref = await post_message(client, auth, "アプリが起動しません。エラーです", email="x@example.jp")
        assert (await ticket(client, auth, ref))["assignee"] == "chie@example.com"
        await set_agent(client, auth, "chie@example.com", status="offline")
        detail = await ticket(client, auth, ref)
        assert detail["assignee"] is None
        assert detail["routing_log"][-1]["action"] == "released"


TOPIC_TEXTS = ["請求について", "invoice refund", "エラーが出ます", "login error", "配送が届かない",
               "shipping tracking", "hello there", "こんにちは"]


async def test_concurrent_ingest_from_two_processes_never_over_assigns(config, database, clock):
    """200 tickets from 20 tasks over two pools (two "processes"), with queue drains racing them."""
    pools = [await db.create_pool(database, min_size=2, max_size=10) for _ in range(2)]
    try:
        async with pools[0].acquire() as conn:
            await conn.execute("UPDATE agents SET capacity = 7")
        pipelines = [Pipeline(config, clock) for _ in pools]
        rng = random.Random(5)
        jobs = [message(f"{rng.choice(TOPIC_TEXTS)} #{i}", f"cust{i}@example.org") for i in range(200)]

        async def worker(index: int) -> None:
            for job in jobs[index::20]:
                await pipelines[index % 2].ingest(pools[index % 2], job)
                if index % 5 == 0:
                    await actions.drain_queue(pools[(index + 1) % 2], clock())

        await asyncio.gather(*(worker(i) for i in range(20)))
        async with pools[0].acquire() as conn:
            agents = await conn.fetch(
                "SELECT a.email, a.load, a.capacity, (SELECT count(*) FROM tickets t WHERE t.assignee_id = a.id"
                " AND t.status IN ('open', 'pending')) AS assigned FROM agents a")
            per_ticket = await conn.fetch("SELECT ticket_id, count(*) FROM routing_log WHERE action LIKE 'assigned'"
                                          " GROUP BY ticket_id HAVING count(*) > 1")
            tickets_count = await conn.fetchval("SELECT count(*) FROM tickets")
        assert tickets_count == 200
        for agent in agents:
            assert agent["load"] <= agent["capacity"], agent
            assert agent["load"] == agent["assigned"], agent
        assert sum(a["assigned"] for a in agents) == 21  # aiko, ben, chie at capacity 7 each
        assert per_ticket == []
    finally:
        for pool in pools:
            await pool.close()
