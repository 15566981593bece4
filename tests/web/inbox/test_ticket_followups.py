"""Ticket page follow-ups: the reply selector offers exactly the addresses the reply action would use
(`customers.address_on`) and says when WhatsApp goes as the reply template; the timeline shows undone
merges, verified identities and the platforms' delivery receipts."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import httpx

from router.app import create_app
from router.config import WhatsAppConfig, WhatsAppTemplate
from router.core.inbound import Identity, InboundMessage
from router.core.pipeline import Pipeline
from router.core.store import events, receipts
from tests.conftest import sign_in

LEAD = {"Authorization": "Bearer demo-lena"}
AGENT = {"Authorization": "Bearer demo-aiko"}
TEMPLATE_NOTE = "outside the 24-hour window: goes as the WhatsApp template (one line, at most 1,024 characters)"
TEMPLATE_NOTE_JA = "24時間枠外：WhatsAppテンプレートで送信（1行・1,024文字まで）"
WA = "819012345678"


async def send(client, auth, sender: dict[str, object], text: str) -> str:
    answer = await client.post("/api/v1/messages", json={"channel": "api", "sender": sender, "text": text},
                               headers=auth)
    assert answer.status_code == 202, answer.text
    ref: str = answer.json()["ticket_ref"]
    return ref


def reply_selector(html: str) -> str:
    start = html.index('id="reply-channel"')
    return html[start:html.index("</select>", start)]


def timeline_part(html: str) -> str:
    start = html.index('id="timeline"')
    return html[start:html.index("</section>", start)]


async def customer_of(pool, ref: str) -> int:
    customer: int = await pool.fetchval("SELECT customer_id FROM tickets WHERE number = $1", int(ref[2:]))
    return customer


async def test_the_selector_never_offers_a_claim_a_merge_brought_in(client, auth, pool):
    owner_ref = await send(client, auth, {"id": "o-1", "phone": "+819012345678", "verified": ["phone"]}, "Hello")
    other_ref = await send(client, auth, {"id": "k-1", "email": "typed@evil.example"}, "Hello too")
    owner, other = await customer_of(pool, owner_ref), await customer_of(pool, other_ref)
    merged = await client.post(f"/api/v1/customers/{owner}/merge", json={"other": other}, headers=LEAD)
    assert merged.status_code == 200, merged.text
    refused = await client.post(f"/api/v1/tickets/{owner_ref}/replies", headers=AGENT,
                                json={"text": "Hi", "channel": "email"})
    assert refused.status_code == 422, "the reply action refuses the typed address"
    await sign_in(client, "lena@example.com")
    selector = reply_selector((await client.get(f"/inbox/{owner_ref}")).text)
    assert "typed@evil.example" not in selector
    assert 'value="email"' not in selector
    # Undone, the claimant's own ticket is answered where they typed, as the action would.
    [entry] = (await client.get(f"/api/v1/customers/{owner}/merges", headers=LEAD)).json()["merges"]
    assert (await client.post(f"/api/v1/merges/{entry['id']}/undo", headers=LEAD)).status_code == 200
    selector = reply_selector((await client.get(f"/inbox/{other_ref}")).text)
    assert "typed@evil.example" in selector and 'value="email"' in selector


async def whatsapp_ticket(pool, config, clock) -> str:
    outcome = await Pipeline(config, clock).ingest(pool, InboundMessage(
        "whatsapp", (Identity("whatsapp", WA),), "Where is my order?", external_id="wamid.in-1",
        sender_name="Taro"))
    assert outcome.ticket_ref
    return outcome.ticket_ref


async def test_whatsapp_outside_the_window_is_offered_as_the_template(pool, config, clock):
    settings = replace(config.settings, meta_access_token="token")
    templated = replace(config, settings=settings, whatsapp=WhatsAppConfig(
        {"ja": WhatsAppTemplate("support_reply", "ja"), "en": WhatsAppTemplate("support_reply", "en_US")}))
    plain = replace(config, settings=settings)
    ref = await whatsapp_ticket(pool, templated, clock)
    clock.advance(timedelta(hours=25))
    pages = {}
    for name, chosen in (("templated", templated), ("plain", plain)):
        app = create_app(chosen, pool=pool, clock=clock)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://router.test") as web:
            await sign_in(web, "aiko@example.com")
            for lang in ("en", "ja"):
                pages[name, lang] = reply_selector(
                    (await web.get(f"/inbox/{ref}", headers={"Accept-Language": lang})).text)
    assert TEMPLATE_NOTE in pages["templated", "en"] and TEMPLATE_NOTE_JA in pages["templated", "ja"]
    option = pages["templated", "en"].split('<option value="whatsapp"', 1)[1].split("</option>", 1)[0]
    assert " disabled" not in option.split(">", 1)[0] and TEMPLATE_NOTE in option
    assert TEMPLATE_NOTE not in pages["plain", "en"] and "reply window closed" in pages["plain", "en"]


async def test_undone_merges_and_verified_identities_are_on_the_timeline(client, auth, pool, clock):
    a_ref = await send(client, auth, {"id": "s-a", "email": "a@example.net", "verified": ["email"]}, "A writes")
    b_ref = await send(client, auth, {"id": "s-b", "email": "b@example.net", "verified": ["email"]}, "B writes")
    a, b = await customer_of(pool, a_ref), await customer_of(pool, b_ref)
    assert (await client.post(f"/api/v1/customers/{a}/merge", json={"other": b}, headers=LEAD)).status_code == 200
    [entry] = (await client.get(f"/api/v1/customers/{a}/merges", headers=LEAD)).json()["merges"]
    clock.advance(timedelta(minutes=1))
    undone = await client.post(f"/api/v1/merges/{entry['id']}/undo", json={"reason": "two different people"},
                               headers=LEAD)
    assert undone.status_code == 200, undone.text
    lena = await pool.fetchval("SELECT name FROM agents WHERE email = 'lena@example.com'")
    async with pool.acquire() as conn:  # the payload `actions.identity` records when a proof succeeds
        ticket_id = await conn.fetchval("SELECT id FROM tickets WHERE number = $1", int(a_ref[2:]))
        await events.record(conn, ticket_id, "customer.identity_verified",
                            {"customer_id": a, "identity": "email:a2@example.net", "reason": "proved email by code",
                             "actor_id": None}, clock())
    await sign_in(client, "aiko@example.com")
    english = timeline_part((await client.get(f"/inbox/{a_ref}", headers={"Accept-Language": "en"})).text)
    japanese = timeline_part((await client.get(f"/inbox/{a_ref}", headers={"Accept-Language": "ja"})).text)
    assert f"Merge undone by {lena}" in english
    assert "Identity verified: email:a2@example.net" in english and "proved email by code" in english
    assert f"{lena} が顧客レコードの統合を取り消しました" in japanese and "連絡先を確認済みにしました" in japanese
    assert "customer.split" not in english and "customer.identity_verified" not in english


async def test_each_outbound_message_shows_its_latest_receipt(client, pool, config, clock):
    settings = replace(config.settings, meta_access_token="token")
    chosen = replace(config, settings=settings)
    ref = await whatsapp_ticket(pool, chosen, clock)
    app = create_app(chosen, pool=pool, clock=clock)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://router.test") as web:
        ids = []
        for n in range(3):
            clock.advance(timedelta(minutes=1))
            sent = await web.post(f"/api/v1/tickets/{ref}/replies", headers=AGENT,
                                  json={"text": f"Answer {n}", "channel": "whatsapp"})
            assert sent.status_code == 201, sent.text
            ids.append(sent.json()["message_id"])
        async with pool.acquire() as conn:
            for n, message_id in enumerate(ids):  # what the sender stores once the platform accepted it
                await conn.execute("UPDATE messages SET external_id = $2 WHERE id = $1", message_id, f"out-{n}")
            at = clock()

            async def receipt(n: int, status: str, error: str | None = None, later: int = 0) -> None:
                assert await receipts.record(
                    conn, channel="whatsapp", message_ref=f"out-{n}", platform_message_id=f"wamid.{n}",
                    status=status, error=error, occurred_at=at + timedelta(seconds=later), now=at) == "recorded"

            await receipt(0, "delivered")
            await receipt(0, "read", later=5)
            await receipt(1, "delivered")
            await receipt(2, "failed", "131026: Message undeliverable")
        await sign_in(web, "aiko@example.com")
        html = timeline_part((await web.get(f"/inbox/{ref}", headers={"Accept-Language": "en"})).text)
        ja = timeline_part((await web.get(f"/inbox/{ref}", headers={"Accept-Language": "ja"})).text)
    items = html.split("<li")
    first, second, third = (next(i for i in items if f"Answer {n}" in i) for n in range(3))
    assert ">Read <time" in first and ">Delivered" not in first
    assert ">Delivered <time" in second and ">Read" not in second
    assert 'class="delivery dead receipt" role="status">Failed: 131026: Message undeliverable' in third
    assert "既読" in ja and "配信失敗: 131026" in ja
