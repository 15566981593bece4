"""Issue 11's cross-channel story, over real sockets: hanako mails our SMTP intake, then opens the chat
on the site and proves the same address with the code we mail her, then writes on WhatsApp from the
phone number an agent added to her profile. One ticket holds all three channels; the agent's reply
goes out on WhatsApp (her latest channel), and one more, sent by email as the inbox selector offers,
reaches her mailbox."""

from __future__ import annotations

import re
from dataclasses import replace

import asyncpg
import httpx
import pytest

from channels.email.intake import start_server
from channels.meta.send import MetaSender
from router.config import Config, demo_config_text, parse_config
from router.core.clock import ManualClock
from router.core.outbound import Dispatcher
from router.core.pipeline import Pipeline
from router.demo import whatsapp_request
from router.workers import senders_for, smtp_intake_handler
from tests.channels.meta.fake_platform import fake_platform
from tests.channels.meta.test_send import SENT, TOKEN
from tests.chat.conftest import Serving, Visitor, api
from tests.conftest import free_port
from tests.e2e.test_email import mail, smtp_send

META_SECRET = "meta-story-secret"
HANAKO = "hanako@example.net"
PHONE = "+819012345678"


@pytest.fixture
def config(settings, sink) -> Config:
    settings = replace(settings, meta_app_secret=META_SECRET, smtp_relay=f"smtp://127.0.0.1:{sink.port}")
    return parse_config(demo_config_text(), settings)


async def outbox(pool: asyncpg.Pool, kind: str) -> list[asyncpg.Record]:
    return list(await pool.fetch("SELECT channel, payload->>'to' AS to, payload->>'text' AS text FROM outbox"
                                 " WHERE kind = $1 ORDER BY id", kind))


async def test_one_ticket_three_channels_and_replies_on_the_right_one(start: Serving, pool: asyncpg.Pool,
                                                                      clock: ManualClock, config: Config, sink):
    served = await start()

    # 1. A mail to our SMTP intake.
    port = free_port()
    intake = await start_server(smtp_intake_handler(config, pool, lambda: Pipeline(config, clock)),
                                "127.0.0.1", port, hostname="example.com")
    try:
        await smtp_send(port, mail(f"Hanako Sato <{HANAKO}>", "請求書について", "請求書の金額が違います。"),
                        sender=HANAKO)
    finally:
        intake.close()
        await intake.wait_closed()

    async with api(served) as agent:
        [ticket] = (await agent.get("/api/v1/tickets")).json()["tickets"]
        ref, customer_id = ticket["ref"], ticket["customer_id"]

        # 2. The chat: a new visitor, then the same address proved with the mailed code.
        visitor = Visitor(served.ws_url)
        await visitor.open()
        await visitor.send({"type": "message", "id": "story-chat-01", "text": "メールした件、チャットでも聞けますか？"})
        assert (await visitor.until(lambda f: f["type"] in ("sent", "error")))["type"] == "sent", visitor.frames
        await visitor.send({"type": "email", "address": HANAKO})
        assert (await visitor.until(lambda f: f["type"] in ("code_sent", "error")))["type"] == "code_sent"
        [proof] = await outbox(pool, "identity_proof")
        assert proof["to"] == HANAKO
        code = re.search(r"\b(\d{6})\b", proof["text"])
        assert code is not None
        await visitor.send({"type": "verify", "code": code.group(1)})
        assert (await visitor.until(lambda f: f["type"] in ("verified", "error")))["type"] == "verified"
        await visitor.close()

        # 3. An agent adds her phone number; she writes on WhatsApp from it.
        added = await agent.post(f"/api/v1/customers/{customer_id}/identities", json={"kind": "phone", "value": PHONE})
        assert added.status_code in (200, 201), added.text
        path, body, headers = whatsapp_request(META_SECRET, wa_id=PHONE[1:], name="Hanako", text="電車から失礼します",
                                               message_id="wamid.story-1", at=int(clock().timestamp()))
        async with httpx.AsyncClient(base_url=served.http_url, timeout=30) as http:
            assert (await http.post(path, content=body, headers=headers)).status_code == 200

        # One ticket holds all three channels.
        tickets = (await agent.get("/api/v1/tickets", params={"status": "open"})).json()["tickets"]
        assert [t["ref"] for t in tickets] == [ref]
        detail = (await agent.get(f"/api/v1/tickets/{ref}")).json()
        inbound = [m["channel"] for m in detail["messages"] if m["direction"] == "in"]
        assert inbound == ["email", "chat", "whatsapp"]

        # The reply goes out on WhatsApp, her latest channel; one more by email, as the selector offers.
        latest = await agent.post(f"/api/v1/tickets/{ref}/replies", json={"text": "確認して修正しました。"})
        assert latest.status_code == 201
        assert (await agent.post(f"/api/v1/tickets/{ref}/replies",
                                 json={"text": "請求書を再発行しました。", "channel": "email"})).status_code == 201
    replies = await outbox(pool, "reply")
    assert [(r["channel"], r["to"]) for r in replies] == [("whatsapp", PHONE[1:]), ("email", HANAKO)]

    async with fake_platform(SENT) as graph:
        senders = {**senders_for(config), "whatsapp": MetaSender(graph.url, TOKEN, config.whatsapp, clock)}
        await Dispatcher(pool, senders, clock).run_once()
        [whatsapp] = [seen for seen in graph.seen if seen.body.get("type") == "text"]
        assert whatsapp.body["to"] == PHONE[1:] and whatsapp.body["text"]["body"] == "確認して修正しました。"
    [reissued] = [m for m in sink.messages if "請求書を再発行しました。" in m.get_body(("plain",)).get_content()]
    assert reissued["To"] == HANAKO and reissued["In-Reply-To"]  # threaded into her mail conversation
