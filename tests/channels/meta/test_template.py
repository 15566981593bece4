"""WhatsApp outside the 24-hour window (issue 11 §3): a reply goes out as the configured reply
template, in the Cloud API's template message format, decided when it is sent; without a template
it is refused with a clear reason. The config section that names the templates, and the channel
rule the reply action and the reply selector read."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from channels.meta.send import MetaSender
from router.config import ConfigError, WhatsAppConfig, WhatsAppTemplate, demo_config_text, parse_config
from router.core.channel_rules import Available, Unavailable, availability, reply_context
from router.core.clock import ManualClock
from router.core.delivery import OutboxItem, PermanentDeliveryError
from router.core.outbound import Dispatcher
from router.demo import whatsapp_request
from tests.channels.meta.fake_platform import FakePlatform, fake_platform
from tests.channels.meta.test_send import SENT, TOKEN
from tests.conftest import make_settings

NOW = datetime(2026, 11, 25, 1, 0, tzinfo=UTC)
TEMPLATES = WhatsAppConfig({"ja": WhatsAppTemplate("support_reply", "ja"),
                            "en": WhatsAppTemplate("support_reply", "en_US")})
TEMPLATE_CONFIG = """
[whatsapp]
phone_number_id = "106540352242922"

[whatsapp.reply_templates]
ja = { name = "support_reply", language = "ja" }
en = { name = "support_reply", language = "en_US" }
"""


@pytest.fixture
async def graph() -> AsyncIterator[FakePlatform]:
    async with fake_platform(SENT) as api:
        yield api


def item(*, closes: datetime | None, language: str = "ja", text: str = "ご返金は本日手続きしました。",
         **extra: str) -> OutboxItem:
    payload = {"to": "819012345678", "text": text, "message_id": "outbox:reply:7:abc", "language": language,
               "phone_number_id": "106540352242922", **extra}
    if closes is not None:
        payload["window_closes_at"] = closes.isoformat()
    return OutboxItem(id=1, idempotency_key="reply:7:abc", kind="reply", channel="whatsapp", ticket_id=7,
                      payload=payload, attempts=1)


def template_body(name: str, code: str, text: str) -> dict[str, object]:
    """A template message as the Cloud API documents it (`type: template`, body parameters)."""
    return {"messaging_product": "whatsapp", "recipient_type": "individual", "to": "819012345678",
            "biz_opaque_callback_data": "outbox:reply:7:abc", "type": "template",
            "template": {"name": name, "language": {"code": code},
                         "components": [{"type": "body", "parameters": [{"type": "text", "text": text}]}]}}


# -- the sender ---------------------------------------------------------------------------------

async def test_outside_the_window_the_reply_goes_as_the_template_for_the_tickets_language(graph):
    sender = MetaSender(graph.url, TOKEN, TEMPLATES, ManualClock(NOW))
    await sender.send(item(closes=NOW - timedelta(minutes=1), text="ご返金は\n本日\t手続きしました。\n\n"))
    await sender.send(item(closes=NOW - timedelta(minutes=1), language="en", text="Refunded today."))
    assert [request.body for request in graph.seen] == [
        template_body("support_reply", "ja", "ご返金は 本日 手続きしました。"),  # one line: WhatsApp refuses breaks
        template_body("support_reply", "en_US", "Refunded today.")]


async def test_the_window_is_decided_when_the_message_goes_out(graph):
    clock = ManualClock(NOW)
    sender = MetaSender(graph.url, TOKEN, TEMPLATES, clock)
    queued = item(closes=NOW + timedelta(seconds=30))
    await sender.send(queued)
    clock.advance(timedelta(minutes=1))  # a retry after the window closed
    await sender.send(queued)
    assert [request.body["type"] for request in graph.seen] == ["text", "template"]


async def test_a_language_without_its_template_uses_the_english_one(graph):
    english_only = WhatsAppConfig({"en": WhatsAppTemplate("support_reply", "en_US")})
    await MetaSender(graph.url, TOKEN, english_only, ManualClock(NOW)).send(item(closes=None))
    await MetaSender(graph.url, TOKEN, TEMPLATES, ManualClock(NOW)).send(item(closes=None, language="ko"))
    assert [request.body["template"]["language"] for request in graph.seen] == [{"code": "en_US"}] * 2


async def test_a_customer_who_never_wrote_is_sent_the_template_from_the_configured_number(graph):
    configured = replace(TEMPLATES, phone_number_id="109999999999999")
    queued = item(closes=None)
    del queued.payload["phone_number_id"]
    await MetaSender(graph.url, TOKEN, configured, ManualClock(NOW)).send(queued)
    assert graph.seen[0].path == "/109999999999999/messages"
    assert graph.seen[0].body["type"] == "template"


async def test_without_a_template_or_too_long_for_one_it_is_refused_without_a_call(graph):
    with pytest.raises(PermanentDeliveryError, match="no reply template is configured"):
        await MetaSender(graph.url, TOKEN, WhatsAppConfig(), ManualClock(NOW)).send(item(closes=NOW))
    with pytest.raises(PermanentDeliveryError, match="at most 1024 characters"):
        await MetaSender(graph.url, TOKEN, TEMPLATES, ManualClock(NOW)).send(item(closes=NOW, text="x" * 1025))
    assert graph.seen == []


# -- the rule and the config --------------------------------------------------------------------

def test_with_a_template_configured_whatsapp_stays_available_and_messenger_does_not():
    last = NOW - timedelta(hours=30)
    assert availability("whatsapp", last, NOW, whatsapp_template=True) == Available(template=True)
    assert availability("whatsapp", None, NOW, whatsapp_template=True) == Available(template=True)
    assert availability("whatsapp", NOW - timedelta(hours=1), NOW, whatsapp_template=True) == Available(
        until=NOW + timedelta(hours=23))
    assert isinstance(availability("whatsapp", last, NOW), Unavailable)
    assert isinstance(availability("messenger", last, NOW, whatsapp_template=True), Unavailable)
    assert isinstance(availability("instagram", None, NOW, whatsapp_template=True), Unavailable)


def test_the_reply_context_says_when_the_whatsapp_window_closes():
    assert reply_context("whatsapp", {"phone_number_id": "106540352242922"}, NOW) == {
        "phone_number_id": "106540352242922", "window_closes_at": (NOW + timedelta(hours=24)).isoformat()}
    # A webhook redelivered three hours after the customer wrote: WhatsApp's window opened when they wrote.
    sent = {"sent_at": (NOW - timedelta(hours=3)).isoformat()}
    assert reply_context("whatsapp", sent, NOW)["window_closes_at"] == (NOW + timedelta(hours=21)).isoformat()
    assert reply_context("whatsapp", {"sent_at": "not a time"}, NOW)["window_closes_at"] == (
        NOW + timedelta(hours=24)).isoformat()
    # LINE's reply token counts from the webhook's arrival, whatever the event's own timestamp.
    assert reply_context("line", {"reply_token": "t", **sent}, NOW)["reply_token_at"] == NOW.isoformat()


def test_the_whatsapp_section_names_a_template_per_language(data_dir):
    config = parse_config(demo_config_text() + TEMPLATE_CONFIG, make_settings(data_dir))
    assert config.whatsapp == replace(TEMPLATES, phone_number_id="106540352242922")
    assert parse_config(demo_config_text(), make_settings(data_dir)).whatsapp == WhatsAppConfig()


@pytest.mark.parametrize(("text", "problem"), [
    ('[whatsapp]\nphone_number_id = "+1 555"', "is not a WhatsApp phone number ID"),
    ('[whatsapp.reply_templates]\nfr = { name = "support_reply", language = "fr" }', "fr: expected ja or en"),
    ('[whatsapp.reply_templates]\nen = { name = "Support Reply", language = "en_US" }', "a template name in lower"),
    ('[whatsapp.reply_templates]\nen = { name = "support_reply" }', "WhatsApp's language code"),
    ('[whatsapp]\ntemplate = "x"', "unknown key"),
])
def test_a_bad_whatsapp_section_is_reported_with_its_line(data_dir, text, problem):
    with pytest.raises(ConfigError) as raised:
        parse_config(demo_config_text() + "\n" + text + "\n", make_settings(data_dir), source="router.toml")
    assert any(problem in line and line.startswith("router.toml:") for line in raised.value.problems), \
        raised.value.problems


# -- through the outbox -------------------------------------------------------------------------

@pytest.fixture
def settings(data_dir):
    return make_settings(data_dir, meta_app_secret="meta-secret")


async def test_a_reply_queued_in_the_window_but_sent_after_it_goes_as_the_template(client, auth, pool, clock, graph):
    """The dispatcher could not send for a day (an outage): the reply still reaches the customer."""
    path, body, headers = whatsapp_request("meta-secret", wa_id="16505551234", name="Sheena", text="In blue?",
                                           message_id="wamid.T1", at=int(clock().timestamp()))
    assert (await client.post(path, content=body, headers=headers)).status_code == 200
    async with pool.acquire() as conn:
        number = await conn.fetchval("SELECT number FROM tickets")
        await conn.execute("DELETE FROM outbox WHERE kind = 'ack'")  # only the reply matters here
    clock.advance(timedelta(hours=23))
    assert (await client.post(f"/api/v1/tickets/T-{number}/replies", json={"text": "Yes, in blue."},
                              headers=auth)).status_code == 201
    clock.advance(timedelta(hours=2))
    dispatcher = Dispatcher(pool, {"whatsapp": MetaSender(graph.url, TOKEN, TEMPLATES, clock)}, clock)
    assert await dispatcher.run_once() == 1
    [request] = graph.seen
    assert request.path == "/106540352242922/messages"
    assert json.dumps(request.body["template"]["components"], ensure_ascii=False) == json.dumps(
        [{"type": "body", "parameters": [{"type": "text", "text": "Yes, in blue."}]}])
    assert request.body["template"]["language"] == {"code": "en_US"}


@pytest.fixture
def config(settings):
    return replace(parse_config(demo_config_text(), settings), whatsapp=TEMPLATES)


async def test_with_a_template_an_agent_can_reply_a_day_later_and_it_goes_as_the_template(client, auth, pool, clock,
                                                                                          graph, app):
    path, body, headers = whatsapp_request("meta-secret", wa_id="16505551234", name="Sheena", text="In blue?",
                                           message_id="wamid.T2", at=int(clock().timestamp()))
    assert (await client.post(path, content=body, headers=headers)).status_code == 200
    async with pool.acquire() as conn:
        number = await conn.fetchval("SELECT number FROM tickets")
        await conn.execute("DELETE FROM outbox WHERE kind = 'ack'")
    clock.advance(timedelta(hours=25))
    sent = await client.post(f"/api/v1/tickets/T-{number}/replies", json={"text": "Yes,\nin blue."}, headers=auth)
    assert sent.status_code == 201, sent.text
    dispatcher = Dispatcher(pool, {"whatsapp": MetaSender(graph.url, TOKEN, TEMPLATES, clock)}, clock)
    assert await dispatcher.run_once() == 1
    [request] = graph.seen
    assert request.body["type"] == "template"
    assert request.body["template"]["components"][0]["parameters"][0]["text"] == "Yes, in blue."

    # Without a template the same reply is refused, naming the window.
    await app.state.services.apply_config(replace(app.state.services.config, whatsapp=WhatsAppConfig({})))
    refused = await client.post(f"/api/v1/tickets/T-{number}/replies", json={"text": "Hello?"}, headers=auth)
    assert refused.status_code == 422 and "24" in refused.json()["detail"]
