"""The LINE sender against a local server speaking the Messaging API: the free reply while the token
is fresh (decided with the clock), push otherwise, retry keys, and error classification."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from channels.line.adapter import signature
from channels.line.send import REPLY_TOKEN_TTL, LineSender, LineUnavailable
from router.core.clock import ManualClock
from router.core.delivery import OutboxItem, PermanentDeliveryError
from router.core.outbound import Dispatcher
from router.workers import senders_for
from tests.channels.meta.fake_platform import FakePlatform, fake_platform
from tests.conftest import make_settings

TOKEN = "line-channel-access-token"
USER = "U4af4980629f5fbc3d7d0b0c0b0f3d9a1"
RECEIVED = datetime(2026, 11, 25, 1, 0, tzinfo=UTC)
INVALID_TOKEN = {"message": "Invalid reply token"}


@pytest.fixture
async def line() -> AsyncIterator[FakePlatform]:
    async with fake_platform({"sentMessages": [{"id": "461230966842064897", "quoteToken": "IStG5h1Tz7b..."}]}) as api:
        yield api


def item(*, attempts: int = 1, token: str | None = "nHuyWiB7yP5Zw52FIkcQobQuGDXCTA", key: str = "reply:7:abc",
         text: str = "確認いたします。") -> OutboxItem:
    payload = {"to": USER, "text": text, "message_id": f"outbox:{key}"}
    if token is not None:
        payload.update(reply_token=token, reply_token_at=RECEIVED.isoformat())
    return OutboxItem(id=1, idempotency_key=key, kind="reply", channel="line", ticket_id=1, payload=payload,
                      attempts=attempts)


async def test_a_fresh_reply_token_uses_the_free_reply_api(line):
    clock = ManualClock(RECEIVED + timedelta(seconds=20))
    await LineSender(line.url, TOKEN, clock).send(item())
    [request] = line.seen
    assert (request.method, request.path) == ("POST", "/v2/bot/message/reply")
    assert request.headers["authorization"] == f"Bearer {TOKEN}"
    assert request.body == {"replyToken": "nHuyWiB7yP5Zw52FIkcQobQuGDXCTA",
                            "messages": [{"type": "text", "text": "確認いたします。"}]}


@pytest.mark.parametrize(("age", "attempts", "token"), [
    (REPLY_TOKEN_TTL, 1, "t"),  # too old: LINE would refuse it
    (timedelta(minutes=10), 1, "t"),
    (timedelta(seconds=5), 2, "t"),  # a retry: the first try may have used the token up
    (timedelta(seconds=5), 1, None),  # the customer's message gave none (a redelivered event)
    (-timedelta(seconds=5), 1, "t"),  # a clock that disagrees: do not trust it
])
async def test_otherwise_it_pushes_with_a_retry_key(line, age, attempts, token):
    await LineSender(line.url, TOKEN, ManualClock(RECEIVED + age)).send(item(attempts=attempts, token=token))
    [request] = line.seen
    assert request.path == "/v2/bot/message/push"
    assert request.body == {"to": USER, "messages": [{"type": "text", "text": "確認いたします。"}]}
    assert request.headers["x-line-retry-key"]


async def test_a_used_reply_token_falls_back_to_push(line):
    line.answer(400, INVALID_TOKEN)
    await LineSender(line.url, TOKEN, ManualClock(RECEIVED + timedelta(seconds=3))).send(item())
    assert [request.path for request in line.seen] == ["/v2/bot/message/reply", "/v2/bot/message/push"]


async def test_the_push_retry_key_is_the_same_for_every_attempt_of_an_item(line):
    sender = LineSender(line.url, TOKEN, ManualClock(RECEIVED + timedelta(hours=1)))
    await sender.send(item(attempts=1))
    await sender.send(item(attempts=2))
    await sender.send(item(attempts=1, key="reply:7:another"))
    keys = [request.headers["x-line-retry-key"] for request in line.seen]
    assert keys[0] == keys[1] != keys[2]


async def test_a_push_line_already_accepted_under_this_retry_key_counts_as_delivered(line):
    line.answer(409, {"message": "The retry key is already accepted"},
                {"x-line-accepted-request-id": "123e4567-e89b-12d3-a456-426614174000"})
    await LineSender(line.url, TOKEN, ManualClock(RECEIVED + timedelta(hours=1))).send(item(attempts=2))


@pytest.mark.parametrize("status", [429, 500, 503])
async def test_rate_limits_and_server_errors_are_retried(line, status):
    line.answer(status, {"message": "The API rate limit has been exceeded. Try again later."})
    with pytest.raises(LineUnavailable, match=str(status)):
        await LineSender(line.url, TOKEN, ManualClock(RECEIVED + timedelta(hours=1))).send(item())


async def test_other_refusals_are_permanent_with_lines_reason(line):
    line.answer(400, {"message": "The request body has 1 error(s)",
                      "details": [{"message": "May not be empty", "property": "messages[0].text"}]})
    with pytest.raises(PermanentDeliveryError, match=r"The request body has 1 error\(s\) \(messages\[0\].text: May"):
        await LineSender(line.url, TOKEN, ManualClock(RECEIVED + timedelta(hours=1))).send(item())


async def test_a_text_longer_than_line_takes_is_refused_before_calling(line):
    with pytest.raises(PermanentDeliveryError, match="at most 5000 characters"):
        await LineSender(line.url, TOKEN, ManualClock(RECEIVED)).send(item(text="あ" * 5001))
    assert line.seen == []


@pytest.fixture
def settings(data_dir):
    return make_settings(data_dir, line_channel_secret="line-secret", line_channel_token=TOKEN)


async def test_an_agent_reply_within_the_minute_goes_out_free_through_the_outbox(client, auth, pool, clock, config,
                                                                                 line):
    body = (Path(__file__).parent / "fixtures" / "text_message.json").read_bytes()
    assert (await client.post("/webhooks/line", content=body,
                              headers={"X-Line-Signature": signature(body, "line-secret")})).status_code == 200
    dispatcher = Dispatcher(pool, {"line": LineSender(line.url, TOKEN, clock)}, clock)
    assert isinstance(senders_for(config)["line"], LineSender)  # LINE_CHANNEL_TOKEN registers it
    assert await dispatcher.run_once() == 1  # the acknowledgement
    async with pool.acquire() as conn:
        number = await conn.fetchval("SELECT number FROM tickets")
    clock.advance(timedelta(seconds=30))
    answer = await client.post(f"/api/v1/tickets/T-{number}/replies", json={"text": "確認いたします。"}, headers=auth)
    assert answer.status_code == 201
    assert await dispatcher.run_once() == 1
    assert line.seen[-1].path == "/v2/bot/message/reply"
    assert line.seen[-1].body["replyToken"] == "nHuyWiB7yP5Zw52FIkcQobQuGDXCTA"

    clock.advance(timedelta(minutes=5))  # the token has expired: the next reply is pushed
    await client.post(f"/api/v1/tickets/T-{number}/replies", json={"text": "発送しました。"}, headers=auth)
    assert await dispatcher.run_once() == 1
    assert (line.seen[-1].path, line.seen[-1].body["to"]) == ("/v2/bot/message/push", USER)
