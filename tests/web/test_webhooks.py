"""The social webhooks through the app, on the real database: signatures before anything is stored,
2xx only after commit, a platform retry stored once, one customer across messages and channels,
WhatsApp statuses recorded on our own messages, and the channel rules an agent's reply meets."""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from channels.line.adapter import signature as line_signature
from router import db
from router.app import create_app
from tests.conftest import make_settings

CHANNELS = Path(__file__).parents[1] / "channels"
META_SECRET, VERIFY_TOKEN, LINE_SECRET, TELEGRAM_SECRET = "meta-secret", "verify-me", "line-secret", "tg-secret"
WA_ID = "16505551234"


@pytest.fixture
def settings(data_dir):
    return make_settings(data_dir, meta_app_secret=META_SECRET, meta_verify_token=VERIFY_TOKEN,
                         line_channel_secret=LINE_SECRET, telegram_secret_token=TELEGRAM_SECRET)


def fixture(channel: str, name: str) -> bytes:
    return (CHANNELS / channel / "fixtures" / name).read_bytes()


def whatsapp_text(text: str, message_id: str, wa_id: str = WA_ID) -> bytes:
    data = json.loads(fixture("meta", "whatsapp_text.json"))
    value = data["entry"][0]["changes"][0]["value"]
    value["contacts"][0]["wa_id"] = value["messages"][0]["from"] = wa_id
    value["messages"][0].update(id=message_id, text={"body": text})
    return json.dumps(data).encode()


def whatsapp_statuses(ref: str, *states: str, wamid: str = "wamid.OURS") -> bytes:
    statuses: list[dict[str, Any]] = [
        {"id": wamid, "status": state, "timestamp": "1750263773", "recipient_id": WA_ID,
         "biz_opaque_callback_data": ref} for state in states]
    return json.dumps({"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": [
        {"field": "messages", "value": {"messaging_product": "whatsapp", "statuses": statuses}}]}]}).encode()


async def post_meta(client: httpx.AsyncClient, body: bytes, secret: str = META_SECRET) -> httpx.Response:
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return await client.post("/webhooks/meta", content=body, headers={
        "X-Hub-Signature-256": f"sha256={digest}", "Content-Type": "application/json"})


async def post_line(client: httpx.AsyncClient, body: bytes, secret: str = LINE_SECRET) -> httpx.Response:
    return await client.post("/webhooks/line", content=body, headers={"X-Line-Signature": line_signature(body, secret)})


async def post_telegram(client: httpx.AsyncClient, body: bytes, token: str = TELEGRAM_SECRET) -> httpx.Response:
    return await client.post("/webhooks/telegram", content=body, headers={"X-Telegram-Bot-Api-Secret-Token": token})


async def count(pool, sql: str, *args: object) -> int:
    async with pool.acquire() as conn:
        return await conn.fetchval(sql, *args)


async def ref_of(pool, channel: str) -> str:
    async with pool.acquire() as conn:
        number = await conn.fetchval("SELECT number FROM tickets WHERE channel = $1 ORDER BY id DESC LIMIT 1", channel)
    return f"T-{number}"


async def known_customer(client: httpx.AsyncClient, auth: dict[str, str], text: str) -> str:
    """A customer an integration (a CRM) knows by a verified email and phone: the WhatsApp number."""
    sender = {"email": "sheena@example.com", "phone": "+1 650 555 1234", "verified": ["email", "phone"]}
    answer = await client.post("/api/v1/messages", json={"channel": "api", "sender": sender, "text": text},
                               headers=auth)
    assert answer.status_code == 202, answer.text
    return answer.json()["ticket_ref"]


async def reply(client: httpx.AsyncClient, auth: dict[str, str], ref: str, text: str, **fields: str) -> httpx.Response:
    return await client.post(f"/api/v1/tickets/{ref}/replies", json={"text": text, **fields}, headers=auth)


# -- Meta ----------------------------------------------------------------------------------------

async def test_the_verify_handshake_answers_the_challenge_for_our_token_only(client):
    query = {"hub.mode": "subscribe", "hub.verify_token": VERIFY_TOKEN, "hub.challenge": "1158201444"}
    answer = await client.get("/webhooks/meta", params=query)
    assert (answer.status_code, answer.text) == (200, "1158201444")
    assert answer.headers["content-type"].startswith("text/plain")
    wrong = await client.get("/webhooks/meta", params={**query, "hub.verify_token": "guess"})
    assert wrong.status_code == 403
    assert wrong.json()["error"] == "forbidden"


async def test_a_whatsapp_message_is_stored_once_however_often_meta_retries(client, pool):
    body = fixture("meta", "whatsapp_text.json")
    first = await post_meta(client, body)
    assert (first.status_code, first.json()) == (200, {"stored": 1, "statuses": 0})
    # The 200 came after the commit: another connection sees the message, its ticket and its customer.
    assert await count(pool, "SELECT count(*) FROM messages WHERE channel = 'whatsapp' AND direction = 'in'") == 1
    again = await post_meta(client, body)
    assert (again.status_code, again.json()["stored"]) == (200, 0)
    assert await count(pool, "SELECT count(*) FROM messages WHERE channel = 'whatsapp' AND direction = 'in'") == 1
    assert await count(pool, "SELECT count(*) FROM tickets") == 1
    async with pool.acquire() as conn:
        identities = {(r["kind"], r["value"], r["verified"]) for r in await conn.fetch(
            "SELECT kind, value, verified FROM customer_identities")}
    assert identities == {("whatsapp", WA_ID, True), ("phone", "+" + WA_ID, True)}


@pytest.mark.parametrize("signature", [None, "sha256=" + "0" * 64, "wrong-secret"])
async def test_a_bad_signature_is_401_and_stores_nothing(client, pool, signature):
    body = fixture("meta", "whatsapp_text.json")
    if signature == "wrong-secret":
        answer = await post_meta(client, body, secret="not-the-app-secret")
    else:
        headers = {"X-Hub-Signature-256": signature} if signature else {}
        answer = await client.post("/webhooks/meta", content=body, headers=headers)
    assert answer.status_code == 401
    assert answer.json()["error"] == "unauthorized"
    assert await count(pool, "SELECT count(*) FROM messages") == 0
    assert await count(pool, "SELECT count(*) FROM customers") == 0
    assert 'router_messages_rejected_total{channel="meta",reason="unauthorized"}' in (await client.get("/metrics")).text


async def test_a_follow_up_joins_the_same_customer_and_ticket(client, pool):
    assert (await post_meta(client, whatsapp_text("My parcel is late", "wamid.A1"))).status_code == 200
    assert (await post_meta(client, whatsapp_text("Order 4711, by the way", "wamid.A2"))).status_code == 200
    assert await count(pool, "SELECT count(*) FROM customers") == 1
    assert await count(pool, "SELECT count(*) FROM tickets") == 1
    assert await count(pool, "SELECT count(DISTINCT ticket_id) FROM messages WHERE direction = 'in'") == 1


async def test_the_whatsapp_phone_proves_the_customer_an_agent_knows_by_that_phone(client, auth, pool):
    ref = await known_customer(client, auth, "I wrote to you from your site")
    await post_meta(client, whatsapp_text("It's me again, on WhatsApp", "wamid.B1"))
    assert await count(pool, "SELECT count(*) FROM customers WHERE merged_into IS NULL") == 1
    assert await ref_of(pool, "api") == ref
    assert await count(pool, "SELECT count(DISTINCT ticket_id) FROM messages WHERE direction = 'in'") == 1


async def test_echoes_receipts_and_unknown_events_are_acknowledged_and_store_nothing(client, pool):
    for name in ("messenger_echo.json", "messenger_receipts.json", "instagram_comment.json", "unknown_object.json",
                 "whatsapp_template_status.json"):
        answer = await post_meta(client, fixture("meta", name))
        assert (answer.status_code, answer.json()["stored"]) == (200, 0), name
    assert await count(pool, "SELECT count(*) FROM messages") == 0
    assert await count(pool, "SELECT count(*) FROM customers") == 0


async def test_messenger_and_instagram_messages_are_stored_on_their_channels(client, pool):
    for name in ("messenger_text.json", "messenger_postback.json", "instagram_text.json"):
        assert (await post_meta(client, fixture("meta", name))).json()["stored"] == 1, name
    async with pool.acquire() as conn:
        rows = await conn.fetch("SELECT channel, body_text FROM messages WHERE direction = 'in' ORDER BY id")
    assert [(r["channel"], r["body_text"]) for r in rows] == [
        ("messenger", "hello, world!"), ("messenger", "Talk to an agent"),
        ("instagram", "Is the blue one back in stock?")]


async def test_whatsapp_statuses_are_recorded_once_on_our_message_with_an_event(client, auth, pool):
    await post_meta(client, whatsapp_text("Where is my refund?", "wamid.C1"))
    ref = await ref_of(pool, "whatsapp")
    assert (await reply(client, auth, ref, "It went out today.")).status_code == 201
    async with pool.acquire() as conn:
        ours = await conn.fetchrow("SELECT id, external_id FROM messages WHERE channel = 'whatsapp'"
                                   " AND direction = 'out' AND metadata->>'kind' = 'reply'")
    answer = await post_meta(client, whatsapp_statuses(ours["external_id"], "sent", "delivered", "read"))
    assert answer.status_code == 200
    await post_meta(client, whatsapp_statuses(ours["external_id"], "delivered", "read"))  # Meta's retry
    await post_meta(client, whatsapp_statuses("outbox:someone-else", "delivered"))  # not ours: logged only
    async with pool.acquire() as conn:
        receipts = await conn.fetch("SELECT message_id, status, platform_message_id FROM delivery_receipts ORDER BY id")
        events = await conn.fetch("SELECT payload FROM events WHERE kind = 'message.receipt' ORDER BY id")
    assert [(r["message_id"], r["status"], r["platform_message_id"]) for r in receipts] == [
        (ours["id"], "delivered", "wamid.OURS"), (ours["id"], "read", "wamid.OURS")]
    assert [e["payload"] for e in events] == [{"message_id": ours["id"], "status": "delivered", "error": None},
                                              {"message_id": ours["id"], "status": "read", "error": None}]
    assert await count(pool, "SELECT count(*) FROM messages WHERE direction = 'in'") == 1  # never a customer message


async def test_a_failed_status_records_the_platform_reason(client, auth, pool):
    await post_meta(client, whatsapp_text("Hello?", "wamid.D1"))
    assert (await reply(client, auth, await ref_of(pool, "whatsapp"), "Hello!")).status_code == 201
    async with pool.acquire() as conn:
        ref = await conn.fetchval("SELECT external_id FROM messages WHERE direction = 'out' AND"
                                  " metadata->>'kind' = 'reply'")
    data = json.loads(fixture("meta", "whatsapp_statuses.json"))
    for status in data["entry"][0]["changes"][0]["value"]["statuses"]:
        status["biz_opaque_callback_data"] = ref
    await post_meta(client, json.dumps(data).encode())
    async with pool.acquire() as conn:
        error = await conn.fetchval("SELECT error FROM delivery_receipts WHERE status = 'failed'")
    assert error.startswith("131047 Re-engagement message (Message failed to send because more than 24 hours")


# -- LINE and Telegram ---------------------------------------------------------------------------

async def test_a_line_message_is_stored_once_with_its_reply_token(client, pool):
    answer = await post_line(client, fixture("line", "text_message.json"))
    assert (answer.status_code, answer.json()) == (200, {"stored": 1})
    assert (await post_line(client, fixture("line", "redelivery.json"))).json() == {"stored": 0}
    async with pool.acquire() as conn:
        [row] = await conn.fetch("SELECT body_text, metadata FROM messages WHERE channel = 'line'"
                                 " AND direction = 'in'")
    assert row["metadata"]["reply_token"] == "nHuyWiB7yP5Zw52FIkcQobQuGDXCTA"
    assert (await post_line(client, fixture("line", "url_check.json"))).status_code == 200  # the console's check


async def test_a_bad_line_signature_is_401_and_stores_nothing(client, pool):
    answer = await post_line(client, fixture("line", "text_message.json"), secret="someone-else")
    assert answer.status_code == 401
    assert await count(pool, "SELECT count(*) FROM messages") == 0


async def test_a_telegram_message_and_its_edit_are_one_customer(client, pool):
    assert (await post_telegram(client, fixture("telegram", "message_text.json"))).json() == {"stored": 1}
    assert (await post_telegram(client, fixture("telegram", "message_text.json"))).json() == {"stored": 0}
    assert (await post_telegram(client, fixture("telegram", "edited_message.json"))).json() == {"stored": 1}
    assert (await post_telegram(client, fixture("telegram", "from_a_bot.json"))).json() == {"stored": 0}
    assert await count(pool, "SELECT count(*) FROM customers") == 1
    assert await count(pool, "SELECT count(*) FROM tickets") == 1


async def test_a_wrong_telegram_secret_is_401_and_stores_nothing(client, pool):
    assert (await post_telegram(client, fixture("telegram", "message_text.json"), token="guess")).status_code == 401
    assert await count(pool, "SELECT count(*) FROM messages") == 0


# -- configuration, limits, outages -------------------------------------------------------------

async def test_an_unconfigured_channel_is_a_404_problem(config, pool, clock):
    bare = replace(config, settings=make_settings(config.settings.data_dir))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(bare, pool=pool, clock=clock)),
                                 base_url="http://router.test") as client:
        for method, path in (("GET", "/webhooks/meta"), ("POST", "/webhooks/meta"), ("POST", "/webhooks/line"),
                             ("POST", "/webhooks/telegram")):
            answer = await client.request(method, path, content=b"{}")
            assert (answer.status_code, answer.json()["error"]) == (404, "not_found"), path
            assert "not configured" in answer.json()["detail"]


async def test_an_oversized_body_is_refused_before_it_is_read(client, pool):
    answer = await client.post("/webhooks/telegram", content=b"x" * (1024 * 1024 + 1),
                               headers={"X-Telegram-Bot-Api-Secret-Token": TELEGRAM_SECRET})
    assert answer.status_code == 413
    assert await count(pool, "SELECT count(*) FROM messages") == 0


async def test_database_down_is_a_503_to_retry_and_the_retry_is_stored(config, database, client, pool, clock):
    down = await db.create_pool(database, min_size=1, max_size=2)
    await down.close()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(config, pool=down, clock=clock)),
                                 base_url="http://router.test") as outage:
        answer = await post_meta(outage, fixture("meta", "whatsapp_text.json"))
    assert answer.status_code == 503
    assert answer.headers["retry-after"]
    assert (await post_meta(client, fixture("meta", "whatsapp_text.json"))).json()["stored"] == 1


# -- replies and channel rules ------------------------------------------------------------------

async def test_a_whatsapp_reply_carries_the_business_number_and_is_refused_after_24_hours(client, auth, pool, clock):
    await known_customer(client, auth, "Hello from the site")
    await post_meta(client, whatsapp_text("Any news?", "wamid.E1"))
    ref = await ref_of(pool, "api")
    clock.advance(timedelta(hours=23, minutes=59))
    assert (await reply(client, auth, ref, "Yes: it ships tomorrow.")).status_code == 201
    async with pool.acquire() as conn:
        payload = await conn.fetchval("SELECT payload FROM outbox WHERE kind = 'reply'")
    assert (payload["to"], payload["phone_number_id"]) == (WA_ID, "106540352242922")

    clock.advance(timedelta(minutes=2))
    refused = await reply(client, auth, ref, "One more thing")
    assert refused.status_code == 422
    detail = refused.json()["detail"]
    assert "WhatsApp allows free-form replies only within 24 hours" in detail
    assert "Reply by email instead (sheena@example.com)" in detail
    assert await count(pool, "SELECT count(*) FROM outbox WHERE kind = 'reply'") == 1  # nothing queued
    assert (await reply(client, auth, ref, "One more thing", channel="email")).status_code == 201


async def test_outside_the_window_without_an_email_the_agent_is_told_so(client, auth, pool, clock):
    await post_meta(client, fixture("meta", "messenger_text.json"))
    clock.advance(timedelta(hours=25))
    refused = await reply(client, auth, await ref_of(pool, "messenger"), "Sorry for the wait")
    assert refused.status_code == 422
    assert "Messenger allows free-form replies only within 24 hours" in refused.json()["detail"]
    assert "no email address" in refused.json()["detail"]


async def test_a_reply_longer_than_the_platform_takes_is_refused(client, auth, pool):
    await post_meta(client, fixture("meta", "instagram_text.json"))
    refused = await reply(client, auth, await ref_of(pool, "instagram"), "x" * 1001)
    assert refused.status_code == 422
    assert "at most 1000 characters" in refused.json()["detail"]


async def test_a_line_reply_carries_the_reply_token_and_when_we_received_it(client, auth, pool, clock):
    await post_line(client, fixture("line", "text_message.json"))
    received = clock()
    clock.advance(timedelta(seconds=20))
    assert (await reply(client, auth, await ref_of(pool, "line"), "確認いたします。")).status_code == 201
    async with pool.acquire() as conn:
        payload = await conn.fetchval("SELECT payload FROM outbox WHERE kind = 'reply'")
    assert payload["to"] == "U4af4980629f5fbc3d7d0b0c0b0f3d9a1"
    assert payload["reply_token"] == "nHuyWiB7yP5Zw52FIkcQobQuGDXCTA"
    assert payload["reply_token_at"] == received.isoformat()
