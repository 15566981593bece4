"""The Telegram sender against a local server speaking the Bot API: `sendMessage` with the chat id,
flood control and 5xx retried by the outbox, refusals dead with Telegram's reason."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest

from channels.telegram.send import TelegramSender, TelegramUnavailable
from router.core.delivery import OutboxItem, PermanentDeliveryError, RetryLater
from router.core.outbound import Dispatcher
from router.workers import senders_for
from tests.channels.meta.fake_platform import FakePlatform, fake_platform
from tests.conftest import make_settings

TOKEN = "123456:ABC-DEF1234ghIkl-zyx57W2v1u123ew11"
SENT = {"ok": True, "result": {"message_id": 1366, "chat": {"id": 1111111, "type": "private"}, "date": 1441645600,
                               "text": "hello"}}
BLOCKED = {"ok": False, "error_code": 403, "description": "Forbidden: bot was blocked by the user"}
UPDATE = (Path(__file__).parent / "fixtures" / "message_text.json").read_bytes()


@pytest.fixture
async def telegram() -> AsyncIterator[FakePlatform]:
    async with fake_platform(SENT) as platform:
        yield platform


@pytest.fixture
def settings(data_dir):
    return make_settings(data_dir, telegram_secret_token="tg-secret", telegram_bot_token=TOKEN)


def item(text: str = "We received your request (T-1001).") -> OutboxItem:
    return OutboxItem(id=1, idempotency_key="ack:1", kind="ack", channel="telegram", ticket_id=1,
                      payload={"to": "1111111", "text": text, "message_id": "outbox:ack:1"}, attempts=1)


async def test_send_message_goes_to_the_bot_api_with_the_chat_id(telegram):
    await TelegramSender(telegram.url, TOKEN).send(item())
    [request] = telegram.seen
    assert (request.method, request.path) == ("POST", f"/bot{TOKEN}/sendMessage")
    assert request.body == {"chat_id": "1111111", "text": "We received your request (T-1001)."}


async def test_a_refusal_is_permanent_with_telegrams_description(telegram):
    telegram.answer(403, BLOCKED)
    with pytest.raises(PermanentDeliveryError, match="bot was blocked by the user") as refused:
        await TelegramSender(telegram.url, TOKEN).send(item())
    assert TOKEN not in str(refused.value)


async def test_flood_control_waits_as_long_as_telegram_asks(telegram):
    telegram.answer(429, {"ok": False, "error_code": 429, "description": "Too Many Requests: retry after 5",
                          "parameters": {"retry_after": 5}})
    with pytest.raises(RetryLater) as error:
        await TelegramSender(telegram.url, TOKEN).send(item())
    assert error.value.after == timedelta(seconds=5) and "retry after 5 s" in str(error.value)


@pytest.mark.parametrize(("status", "body"), [
    (429, {"ok": False, "error_code": 429, "description": "Too Many Requests"}),
    (502, {"ok": False, "error_code": 502, "description": "Bad Gateway"}),
    (200, {"ok": False}),
])
async def test_flood_control_and_server_errors_are_retried(telegram, status, body):
    telegram.answer(status, body)
    with pytest.raises(TelegramUnavailable) as error:
        await TelegramSender(telegram.url, TOKEN).send(item())
    assert "Telegram" in str(error.value)


async def test_an_unreachable_api_is_retried_and_the_error_hides_the_token():
    with pytest.raises(TelegramUnavailable) as error:
        await TelegramSender("http://127.0.0.1:9", TOKEN).send(item())
    assert TOKEN not in repr(error.value)


async def test_a_text_longer_than_telegram_takes_is_refused_before_calling(telegram):
    with pytest.raises(PermanentDeliveryError, match="at most 4096 characters"):
        await TelegramSender(telegram.url, TOKEN).send(item("x" * 4097))
    assert telegram.seen == []


async def outbox(pool):
    async with pool.acquire() as conn:
        return await conn.fetch("SELECT status, attempts, last_error FROM outbox ORDER BY id")


async def test_the_ack_of_a_telegram_message_goes_out_through_the_outbox(client, pool, clock, config, telegram):
    answer = await client.post("/webhooks/telegram", content=UPDATE, headers={"X-Telegram-Bot-Api-Secret-Token":
                                                                               "tg-secret"})
    assert answer.status_code == 200
    assert isinstance(senders_for(config)["telegram"], TelegramSender)  # TELEGRAM_BOT_TOKEN registers it
    dispatcher = Dispatcher(pool, {"telegram": TelegramSender(telegram.url, TOKEN)}, clock)

    telegram.answer(502, {"ok": False, "error_code": 502, "description": "Bad Gateway"})
    assert await dispatcher.run_once() == 0
    [row] = await outbox(pool)
    assert (row["status"], row["attempts"]) == ("pending", 1)
    assert "Bad Gateway" in row["last_error"]

    clock.advance(timedelta(minutes=1))
    assert await dispatcher.run_once() == 1
    assert [r["status"] for r in await outbox(pool)] == ["sent"]
    assert telegram.seen[-1].body["chat_id"] == "1111111"
    assert "T-" in telegram.seen[-1].body["text"]


async def test_a_blocked_bot_makes_the_item_dead_at_once_with_the_reason(client, pool, clock, telegram):
    await client.post("/webhooks/telegram", content=UPDATE, headers={"X-Telegram-Bot-Api-Secret-Token": "tg-secret"})
    telegram.answer(403, BLOCKED)
    assert await Dispatcher(pool, {"telegram": TelegramSender(telegram.url, TOKEN)}, clock).run_once() == 0
    [row] = await outbox(pool)
    assert (row["status"], row["attempts"]) == ("dead", 1)
    assert "Forbidden: bot was blocked by the user" in row["last_error"]
