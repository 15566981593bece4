"""Where an agent's chat reply goes: the open widget at once (pushed at the commit, in whichever process
holds the socket), and when the visitor has left, their verified email too. A typed address is only
a claim until the visitor enters the code sent to it."""

from __future__ import annotations

import re
from datetime import timedelta

import asyncpg

from router.config import Config
from router.core.clock import ManualClock
from router.core.outbound import Dispatcher
from router.web.chat_delivery import ChatDelivery
from tests.chat.conftest import Serving, Visitor, api


async def chat_dispatcher(pool: asyncpg.Pool, clock: ManualClock, config: Config) -> Dispatcher:
    return Dispatcher(pool, {"chat": ChatDelivery(pool, clock, lambda: config)}, clock)


async def emails_to(pool: asyncpg.Pool, address: str, kind: str = "reply") -> list[str]:
    async with pool.acquire() as conn:
        rows = await conn.fetch("SELECT payload->>'text' AS text FROM outbox WHERE channel = 'email' AND kind = $2"
                                " AND payload->>'to' = $1 ORDER BY id", address, kind)
    return [row["text"] for row in rows]


async def proved_visitor(served_url: str, pool: asyncpg.Pool, address: str) -> tuple[Visitor, str]:
    """A visitor who wrote once and proved `address` with the emailed code; and their ticket."""
    visitor = Visitor(served_url)
    await visitor.open()
    await visitor.send({"type": "message", "id": "first-question", "text": "Hello, my login fails"})
    ref = (await visitor.until(lambda f: f["type"] == "sent"))["ref"]
    await visitor.send({"type": "email", "address": address.upper()})
    sent = await visitor.until(lambda f: f["type"] in ("code_sent", "error"))
    assert sent == {"type": "code_sent", "to": "h…@example.net"}
    (mail,) = await emails_to(pool, address, "identity_proof")
    code = re.search(r"\b(\d{6})\b", mail)
    assert code is not None
    await visitor.send({"type": "verify", "code": "000000" if code.group(1) != "000000" else "111111"})
    assert (await visitor.until(lambda f: f["type"] in ("verified", "error")))["code"] == "wrong_code"
    await visitor.send({"type": "verify", "code": code.group(1)})
    assert await visitor.until(lambda f: f["type"] in ("verified", "error")) == {"type": "verified", "email": address}
    return visitor, ref


async def test_a_reply_to_a_visitor_who_left_goes_to_their_verified_email(start: Serving, pool: asyncpg.Pool,
                                                                        clock: ManualClock, config: Config) -> None:
    served = await start()
    visitor, ref = await proved_visitor(served.ws_url, pool, "hanako@example.net")
    dispatcher = await chat_dispatcher(pool, clock, config)
    async with api(served) as agent:
        await agent.post(f"/api/v1/tickets/{ref}/replies", json={"text": "While you are here: try again now."})
        await visitor.until(lambda f: f["type"] == "entry" and f["from"] == "agent")
        await dispatcher.run_once()
        assert await emails_to(pool, "hanako@example.net") == [], "the widget was open: chat only"

        await visitor.close()
        replied = await agent.post(f"/api/v1/tickets/{ref}/replies", json={"text": "Fixed it for you."})
        assert replied.status_code in (200, 201)
        clock.advance(timedelta(seconds=5))
        await dispatcher.run_once()
        assert await emails_to(pool, "hanako@example.net") == [], "left moments ago: they may come back"
        clock.advance(config.chat.offline_after)
        await dispatcher.run_once()
        assert await emails_to(pool, "hanako@example.net") == ["Fixed it for you."]
        clock.advance(timedelta(hours=1))
        await dispatcher.run_once()
        assert await emails_to(pool, "hanako@example.net") == ["Fixed it for you."], \
            "once, and never the reply the open widget had"

    back = Visitor(served.ws_url, token=visitor.token)  # the next visit shows it anyway
    await back.open()
    await back.until(lambda f: f["type"] == "entry" and f["text"] == "Fixed it for you.")
    await back.close()


async def test_a_typed_address_never_receives_the_chat(start: Serving, pool: asyncpg.Pool, clock: ManualClock,
                                                       config: Config) -> None:
    served = await start()
    visitor = Visitor(served.ws_url)
    await visitor.open()
    await visitor.send({"type": "email", "address": "hanako@example.net"})  # claimed before the first message
    assert (await visitor.until(lambda f: f["type"] == "email_saved"))["email"] == "hanako@example.net"
    await visitor.send({"type": "message", "id": "typed-claim-1", "text": "Send my order history please"})
    ref = (await visitor.until(lambda f: f["type"] == "sent"))["ref"]
    await visitor.close()
    async with pool.acquire() as conn:
        claimed = await conn.fetchrow("SELECT verified FROM customer_identities WHERE kind = 'email' AND value = $1",
                                      "hanako@example.net")
    assert claimed is not None and claimed["verified"] is False, "the typed address is a claim on the message"
    async with api(served) as agent:
        replied = await agent.post(f"/api/v1/tickets/{ref}/replies", json={"text": "Here is your history"})
        assert replied.status_code in (200, 201)
        assert replied.json().get("channel", "chat") == "chat"
    clock.advance(config.chat.offline_after * 2)
    await (await chat_dispatcher(pool, clock, config)).run_once()
    assert await emails_to(pool, "hanako@example.net") == []
