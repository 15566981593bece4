"""Nothing lost, nothing twice: a visitor whose connection drops at random points (seeded) resumes
from the last entry number seen, receives every agent reply exactly once and in order, and a message
the server never confirmed is sent again with the same id and stored once."""

from __future__ import annotations

import random
from typing import Any

import asyncpg

from tests.chat.conftest import Serving, Visitor, api

MESSAGES = 100


async def test_every_reply_arrives_once_and_in_order_across_random_drops(start: Serving, pool: asyncpg.Pool) -> None:
    served = await start(messages_per_minute=10_000, messages_per_minute_per_ip=10_000)
    rng = random.Random(20261203)
    visitor = Visitor(served.ws_url)
    await visitor.open()
    unconfirmed: dict[str, str] = {}
    confirmed: dict[str, int] = {}
    ref = None
    drops = 0

    async def reconnect() -> None:
        nonlocal drops
        drops += 1
        visitor.drop()
        await visitor.open()
        for client_id, text in unconfirmed.items():  # what the server never confirmed goes again, same id
            await visitor.send({"type": "message", "id": client_id, "text": text})

    async def confirm_all() -> None:
        nonlocal ref
        while unconfirmed:
            frame = await visitor.next()
            if frame["type"] == "sent":
                unconfirmed.pop(frame["id"], None)
                confirmed[frame["id"]] = frame["seq"]
                ref = frame["ref"]

    async with api(served) as agent:
        for number in range(MESSAGES):
            client_id = f"msg-{number:04d}-{rng.getrandbits(32):08x}"
            unconfirmed[client_id] = f"question {number}"
            await visitor.send({"type": "message", "id": client_id, "text": f"question {number}"})
            if rng.random() < 0.25:  # gone before the confirmation: stored or not, the widget cannot tell
                await reconnect()
            await confirm_all()
            replied = await agent.post(f"/api/v1/tickets/{ref}/replies", json={"text": f"answer {number}"})
            assert replied.status_code in (200, 201), replied.text
            if rng.random() < 0.25:  # gone while the reply is on its way
                await reconnect()
            await visitor.until(lambda f, n=number: f["type"] == "entry" and f["text"] == f"answer {n}")

    assert drops > 20
    answers = [e["text"] for e in visitor.entries if e["from"] == "agent"]
    assert answers == [f"answer {n}" for n in range(MESSAGES)]
    seqs = [e["seq"] for e in visitor.entries]
    assert seqs == list(range(1, len(seqs) + 1)), "every number from 1 on, each once"
    questions = [e["text"] for e in visitor.entries if e["from"] == "customer"]
    assert questions == [f"question {n}" for n in range(MESSAGES)]
    async with pool.acquire() as conn:
        stored = await conn.fetch("SELECT body_text FROM messages WHERE channel = 'chat' AND direction = 'in'")
    assert sorted(r["body_text"] for r in stored) == sorted(f"question {n}" for n in range(MESSAGES))
    await visitor.close()


async def test_the_acknowledgement_follows_the_question_with_the_ticket_and_due_time(start: Serving) -> None:
    served = await start()
    visitor = Visitor(served.ws_url)
    await visitor.open()
    await visitor.send({"type": "message", "id": "first-message-1", "text": "My invoice is wrong"})
    sent = await visitor.until(lambda f: f["type"] == "sent")
    while len(visitor.entries) < 2:  # pushed at the commit, before or after the confirmation
        await visitor.next()
    question, ack = visitor.entries
    assert (question["from"], question["id"], question["seq"]) == ("customer", "first-message-1", 1)
    assert sent["seq"] == 1 and ack["seq"] == 2
    assert ack["ref"] == sent["ref"] and sent["ref"] in ack["text"]
    assert ack["kind"] == "ack" and ack["due"]
    state = await visitor.until(lambda f: f["type"] == "state")
    assert state["ref"] == sent["ref"] and state["due"] == ack["due"]
    await visitor.close()


async def test_a_reload_shows_the_history_once_and_a_server_restart_loses_nothing(start: Serving) -> None:
    served = await start()
    visitor = Visitor(served.ws_url)
    await visitor.open()
    await visitor.send({"type": "message", "id": "before-restart", "text": "Where is my parcel?"})
    sent = await visitor.until(lambda f: f["type"] == "sent")
    while len(visitor.entries) < 2:
        await visitor.next()
    seen = visitor.last
    visitor.drop()
    await served.stop()

    served = await start(port=served.port)  # the same address, a new process's worth of state
    async with api(served, "demo-aiko") as agent:
        replied = await agent.post(f"/api/v1/tickets/{sent['ref']}/replies", json={"text": "It left today."})
        assert replied.status_code in (200, 201), replied.text
    await visitor.open()
    reply = await visitor.until(lambda f: f["type"] == "entry")
    assert (reply["seq"], reply["from"], reply["text"]) == (seen + 1, "agent", "It left today.")
    assert reply["agent"].startswith("Aiko")
    await visitor.close()

    reloaded = Visitor(served.ws_url, token=visitor.token)  # a reload: from 0, with the cookie's token
    await reloaded.open()
    history: list[dict[str, Any]] = []
    while len(history) < 3:
        history.append(await reloaded.until(lambda f: f["type"] == "entry"))
    assert [(e["seq"], e["from"]) for e in history] == [(1, "customer"), (2, "system"), (3, "agent")]
    await reloaded.close()
