"""The Graph API sender against a local server speaking it: the documented request shapes for
WhatsApp, Messenger and Instagram, the bearer token, and Graph errors told apart (retry or dead)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest

from channels.meta.send import MetaSender, MetaUnavailable
from router.core.delivery import OutboxItem, PermanentDeliveryError
from router.core.outbound import Dispatcher
from tests.channels.meta.fake_platform import FakePlatform, fake_platform
from tests.channels.meta.test_adapter import signed
from tests.conftest import make_settings

TOKEN = "EAAG-test-access-token"
SENT = {"messaging_product": "whatsapp", "contacts": [{"input": "16505551234", "wa_id": "16505551234"}],
        "messages": [{"id": "wamid.HBgLMTY1MDUwNzY1MjAVAgARGBI5QTNDQTVCM0Q0Q0Q2RTY3RTcA"}]}
OUTSIDE_WINDOW = {"error": {"message": "(#10) This message is sent outside of allowed window.",
                            "type": "OAuthException", "code": 10, "error_subcode": 2018278, "fbtrace_id": "AbCdEfGh"}}
THROTTLED = {"error": {"message": "(#130429) Rate limit hit", "type": "OAuthException", "code": 130429,
                       "error_data": {"messaging_product": "whatsapp", "details": "Cloud API message throughput"},
                       "fbtrace_id": "AbCdEfGi"}}


@pytest.fixture
async def graph() -> AsyncIterator[FakePlatform]:
    async with fake_platform(SENT) as api:
        yield api


def item(channel: str, to: str, **extra: str) -> OutboxItem:
    """An item answering a customer whose WhatsApp window is still open."""
    payload = {"to": to, "text": "Your refund went out today.", "message_id": "outbox:reply:7:abc",
               "window_closes_at": "2099-01-01T00:00:00+00:00", **extra}
    return OutboxItem(id=1, idempotency_key="reply:7:abc", kind="reply", channel=channel, ticket_id=7,
                      payload=payload, attempts=1)


async def test_whatsapp_sends_from_the_business_number_and_asks_for_our_id_in_its_statuses(graph):
    await MetaSender(graph.url + "/v19.0", TOKEN).send(item("whatsapp", "16505551234",
                                                            phone_number_id="106540352242922"))
    [request] = graph.seen
    assert (request.method, request.path) == ("POST", "/v19.0/106540352242922/messages")
    assert request.headers["authorization"] == f"Bearer {TOKEN}"
    assert request.body == {"messaging_product": "whatsapp", "recipient_type": "individual", "to": "16505551234",
                            "type": "text", "text": {"preview_url": False, "body": "Your refund went out today."},
                            "biz_opaque_callback_data": "outbox:reply:7:abc"}


async def test_whatsapp_without_the_business_number_is_refused_without_a_call(graph):
    with pytest.raises(PermanentDeliveryError, match="no WhatsApp business number"):
        await MetaSender(graph.url, TOKEN).send(item("whatsapp", "16505551234"))
    assert graph.seen == []


async def test_messenger_and_instagram_answer_through_me_messages(graph):
    sender = MetaSender(graph.url, TOKEN)
    await sender.send(item("messenger", "6677889900112233"))
    await sender.send(item("instagram", "1914234458684537"))
    messenger, instagram = graph.seen
    assert (messenger.path, instagram.path) == ("/me/messages", "/me/messages")
    assert messenger.body == {"recipient": {"id": "6677889900112233"}, "messaging_type": "RESPONSE",
                              "message": {"text": "Your refund went out today."}}
    assert instagram.body == {"recipient": {"id": "1914234458684537"},
                              "message": {"text": "Your refund went out today."}}


async def test_a_graph_refusal_is_permanent_with_metas_code_and_message(graph):
    graph.answer(400, OUTSIDE_WINDOW)
    with pytest.raises(PermanentDeliveryError,
                       match=r"Messenger refused the message \(400 code 10 subcode 2018278\): .*outside of allowed"):
        await MetaSender(graph.url, TOKEN).send(item("messenger", "6677889900112233"))


@pytest.mark.parametrize(("status", "body"), [
    (400, THROTTLED),  # Graph reports throttling with a plain 400 and its code
    (400, {"error": {"message": "An unexpected error has occurred.", "code": 1, "is_transient": True}}),
    (429, {}),
    (500, {"error": {"message": "Service temporarily unavailable", "code": 2}}),
    (503, "<html>down</html>"),
])
async def test_throttling_transient_errors_and_5xx_are_retried(graph, status, body):
    graph.answer(status, body)
    with pytest.raises(MetaUnavailable):
        await MetaSender(graph.url, TOKEN).send(item("whatsapp", "16505551234", phone_number_id="1065"))


async def test_a_text_longer_than_instagram_takes_is_refused_before_calling(graph):
    long = item("instagram", "1914234458684537")
    long.payload["text"] = "x" * 1001
    with pytest.raises(PermanentDeliveryError, match="at most 1000 characters"):
        await MetaSender(graph.url, TOKEN).send(long)
    assert graph.seen == []


@pytest.fixture
def settings(data_dir):
    return make_settings(data_dir, meta_app_secret="meta-secret")


async def test_through_the_outbox_a_retry_then_delivery_and_a_refusal_dead_with_its_reason(client, pool, clock,
                                                                                            graph):
    body = (Path(__file__).parent / "fixtures" / "messenger_text.json").read_bytes()
    assert (await client.post("/webhooks/meta", content=body, headers=signed(body, "meta-secret"))).status_code == 200
    dispatcher = Dispatcher(pool, {"messenger": MetaSender(graph.url, TOKEN)}, clock)
    graph.answer(400, THROTTLED)
    assert await dispatcher.run_once() == 0
    async with pool.acquire() as conn:
        row = await conn.fetchrow("SELECT status, attempts, last_error FROM outbox")
    assert (row["status"], row["attempts"]) == ("pending", 1) and "130429" in row["last_error"]
    clock.advance(timedelta(minutes=1))
    graph.answer(400, OUTSIDE_WINDOW)
    assert await dispatcher.run_once() == 0
    async with pool.acquire() as conn:
        row = await conn.fetchrow("SELECT status, attempts, last_error FROM outbox")
        dead = await conn.fetchval("SELECT payload FROM events WHERE kind = 'outbox.dead'")
    assert (row["status"], row["attempts"]) == ("dead", 2)
    assert "outside of allowed window" in row["last_error"] and "outside of allowed window" in dead["error"]
    assert [request.body["recipient"] for request in graph.seen] == [{"id": "6677889900112233"}] * 2
