"""Loop protection on every channel (issue 11 §5): we never answer our own echoes, other bots, or
delivery and read receipts, and the per-customer acknowledgement limit holds on every channel and
across channels (SPEC §2.9) — a bot answering our ack with a new message gets no second ack."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import httpx
import pytest

from channels.email.intake import to_inbound
from channels.email.parse import parse_email
from router import demo
from router.config import demo_config_text, parse_config
from router.core.pipeline import Pipeline
from tests.conftest import make_settings

FIXTURES = Path(__file__).parent / "channels"
META, LINE, TELEGRAM = "loop-meta-secret", "loop-line-secret", "loop-telegram-secret"
BOT = "Uf0a1b2c3d4e5f60718293a4b5c6d7e8f"  # our LINE bot's user id: the webhook's `destination`


@pytest.fixture
def settings(data_dir):
    return make_settings(data_dir, meta_app_secret=META, line_channel_secret=LINE, telegram_secret_token=TELEGRAM)


@pytest.fixture
def config(settings):
    """A one-minute reopen window: a customer's next message after a solve starts a new ticket soon,
    well within the five-minute acknowledgement limit."""
    base = parse_config(demo_config_text(), settings, source="built-in demo")
    return replace(base, service=replace(base.service, reopen_window=timedelta(minutes=1)))


def fixture(path: str) -> bytes:
    return (FIXTURES / path).read_bytes()


def signed_meta(data: dict[str, Any] | bytes) -> demo.SignedRequest:
    body = data if isinstance(data, bytes) else json.dumps(data).encode()
    return "/webhooks/meta", body, {"X-Hub-Signature-256": demo.meta_signature(body, META)}


def message_from(channel: str, number: int, *, who: str = "") -> demo.SignedRequest:
    """Customer message `number` on `channel`, as the platform sends it (`router.demo` builds the
    documented shapes); `who` picks the customer."""
    text, at = f"Where is my order? ({number})", 1_764_000_000 + number
    if channel == "whatsapp":
        return demo.whatsapp_request(META, wa_id=who or "16505551234", name="Sheena", text=text, at=at,
                                     message_id=f"wamid.loop{number}")
    if channel in ("messenger", "instagram"):
        return demo.messaging_request(META, product="page" if channel == "messenger" else "instagram",
                                      sender=who or "6677889900112233", text=text, message_id=f"m_loop{number}",
                                      at_ms=at * 1000)
    if channel == "line":
        return demo.line_request(LINE, user=who or "U4af4980629f5fbc3d7d0b0c0b0f3d9a1", text=text,
                                 message_id=str(10**17 + number), at_ms=at * 1000)
    return demo.telegram_request(TELEGRAM, user=int(who or 1111111), first_name="Test", last_name="User", text=text,
                                 update_id=number, message_id=number, at=at)


async def post(client: httpx.AsyncClient, request: demo.SignedRequest) -> httpx.Response:
    path, body, headers = request
    answer = await client.post(path, content=body, headers=headers)
    assert answer.status_code == 200, answer.text
    return answer


async def counts(pool) -> tuple[int, int, int]:
    """(inbound messages, customers, outbox items)."""
    async with pool.acquire() as conn:
        return (await conn.fetchval("SELECT count(*) FROM messages WHERE direction = 'in'"),
                await conn.fetchval("SELECT count(*) FROM customers"),
                await conn.fetchval("SELECT count(*) FROM outbox"))


async def acks(pool) -> list[tuple[str, str]]:
    async with pool.acquire() as conn:
        rows = await conn.fetch("SELECT channel, payload->>'to' AS to FROM outbox WHERE kind = 'ack' ORDER BY id")
    return [(row["channel"], row["to"]) for row in rows]


async def solve_latest(client: httpx.AsyncClient, auth: dict[str, str], pool) -> None:
    async with pool.acquire() as conn:
        number = await conn.fetchval("SELECT number FROM tickets ORDER BY id DESC LIMIT 1")
    answer = await client.patch(f"/api/v1/tickets/T-{number}", json={"status": "solved"}, headers=auth)
    assert answer.status_code == 200, answer.text


# -- our own echoes -----------------------------------------------------------------------------

async def test_messenger_and_instagram_echoes_of_what_we_sent_are_never_answered(client, pool):
    await post(client, message_from("messenger", 1))
    assert await acks(pool) == [("messenger", "6677889900112233")]
    before = await counts(pool)
    # Meta echoes our ack back to the page's webhook: from the page, to the customer, `is_echo`.
    await post(client, signed_meta(fixture("meta/fixtures/messenger_echo.json")))
    instagram_echo = json.loads(fixture("meta/fixtures/instagram_text.json"))
    event = instagram_echo["entry"][0]["messaging"][0]
    event["sender"], event["recipient"] = event["recipient"], event["sender"]
    event["message"]["is_echo"] = True
    await post(client, signed_meta(instagram_echo))
    # An echo Meta sent without the flag still comes from our own page: never a customer.
    unflagged = json.loads(fixture("meta/fixtures/messenger_echo.json"))
    del unflagged["entry"][0]["messaging"][0]["message"]["is_echo"]
    unflagged["entry"][0]["messaging"][0]["message"]["mid"] = "m_unflagged"
    await post(client, signed_meta(unflagged))
    assert await counts(pool) == before


async def test_a_whatsapp_message_from_our_own_business_number_is_never_answered(client, pool):
    await post(client, demo.whatsapp_request(META, wa_id="15550783881", name="Our business", text="Your ticket T-1",
                                             message_id="wamid.ours", at=1_764_000_000))
    assert await counts(pool) == (0, 0, 0)


async def test_a_line_message_from_our_own_bot_is_never_answered(client, pool):
    await post(client, message_from("line", 1, who=BOT))
    assert await counts(pool) == (0, 0, 0)
    await post(client, message_from("line", 2))  # a customer still is
    assert await counts(pool) == (1, 1, 1)


async def test_mail_from_our_own_address_or_an_autoresponder_gets_no_ack(config, pool, clock):
    pipeline = Pipeline(config, clock)
    for number, (sender, headers) in enumerate([("support@example.com", {}), ("support+T-1@example.com", {}),
                                                ("bot@vendor.example", {"Auto-Submitted": "auto-replied"}),
                                                ("list@vendor.example", {"Precedence": "bulk"})]):
        mail = EmailMessage()
        mail["From"], mail["To"], mail["Subject"] = sender, "support@example.com", "We received your request"
        mail["Message-ID"] = f"<loop{number}@vendor.example>"
        for name, value in headers.items():
            mail[name] = value
        mail.set_content("Thank you for your message.")
        raw = mail.as_bytes()
        result = await pipeline.ingest(pool, to_inbound(parse_email(raw), raw, "raw", sender, ["support@example.com"]))
        assert result.new_ticket, sender
    assert await acks(pool) == []


# -- other bots and receipts --------------------------------------------------------------------

async def test_other_telegram_bots_are_never_answered(client, pool):
    await post(client, ("/webhooks/telegram", fixture("telegram/fixtures/from_a_bot.json"),
                        {"X-Telegram-Bot-Api-Secret-Token": TELEGRAM}))
    assert await counts(pool) == (0, 0, 0)


async def test_delivery_and_read_receipts_are_never_answered(client, pool):
    await post(client, signed_meta(fixture("meta/fixtures/messenger_receipts.json")))
    await post(client, signed_meta(fixture("meta/fixtures/whatsapp_statuses.json")))
    await post(client, signed_meta(fixture("meta/fixtures/whatsapp_template_status.json")))
    assert await counts(pool) == (0, 0, 0)


# -- the acknowledgement limit, per customer, on every channel ----------------------------------

@pytest.mark.parametrize("channel", ["whatsapp", "messenger", "instagram", "line", "telegram"])
async def test_one_ack_per_customer_within_the_limit_on_every_channel(client, auth, pool, clock, channel):
    await post(client, message_from(channel, 1))
    assert [c for c, _ in await acks(pool)] == [channel]
    # Solved, and the customer (or a bot answering our ack) writes again: a new ticket, no second ack.
    await solve_latest(client, auth, pool)
    clock.advance(timedelta(minutes=2))
    await post(client, message_from(channel, 2))
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM tickets") == 2
    assert len(await acks(pool)) == 1
    # Once the limit has passed, the next new ticket is acknowledged again.
    await solve_latest(client, auth, pool)
    clock.advance(timedelta(minutes=4))
    await post(client, message_from(channel, 3))
    assert [c for c, _ in await acks(pool)] == [channel, channel]


async def test_the_ack_limit_is_per_customer_across_their_channels(client, auth, pool, clock):
    """Acked by email on the web side; the same customer (her WhatsApp number is the phone she
    verified) opens a new ticket on WhatsApp minutes later: no second ack. Another customer is
    acknowledged as usual."""
    sender = {"email": "sheena@example.com", "phone": "+1 650 555 1234", "verified": ["email", "phone"]}
    answer = await client.post("/api/v1/messages", json={"channel": "api", "sender": sender, "text": "Hello"},
                               headers=auth)
    assert answer.status_code == 202, answer.text
    assert await acks(pool) == [("email", "sheena@example.com")]
    await solve_latest(client, auth, pool)
    clock.advance(timedelta(minutes=2))
    await post(client, message_from("whatsapp", 1, who="16505551234"))
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM customers WHERE merged_into IS NULL") == 1
        assert await conn.fetchval("SELECT count(*) FROM tickets") == 2
    assert await acks(pool) == [("email", "sheena@example.com")]
    await post(client, message_from("telegram", 2))
    assert await acks(pool) == [("email", "sheena@example.com"), ("telegram", "1111111")]
