"""Outbound Messenger, Instagram and WhatsApp messages through the Graph API (`META_GRAPH_URL`).

- Messenger and Instagram: `POST /me/messages` with the page's token, `recipient.id` the customer's
  page- or Instagram-scoped id (a `RESPONSE` to their message: the 24-hour window, which the reply
  action enforces before anything is queued);
- WhatsApp: `POST /{phone_number_id}/messages`, from the business number that received the
  customer's message (the outbox item carries it: `core.channel_rules.reply_context`; else
  `[whatsapp] phone_number_id`), with `biz_opaque_callback_data` set to our message's external id,
  which WhatsApp echoes in its status webhooks so delivered/read/failed land on this message
  (`channels.meta.adapter`). Within the 24-hour window (decided at send time, so a retry after the
  window closed is no free-form message WhatsApp would refuse) the reply is a text message; outside
  it, a template message: the configured reply template for the ticket's language, its body's one
  variable the reply on one line (WhatsApp refuses line breaks and tabs in template parameters).

The Graph API reports errors as `{"error": {"code", "error_subcode", "message", "is_transient"}}`,
rate limits included, often with a plain 400: those and 5xx are retried by the outbox; the rest is
a permanent refusal carrying Meta's code and message, shown on the ticket.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import httpx

from router.config import WhatsAppConfig, WhatsAppTemplate
from router.core.channel_rules import channel_name, too_long
from router.core.clock import Clock, system_clock
from router.core.delivery import OutboxItem, PermanentDeliveryError

TIMEOUT = httpx.Timeout(15.0, connect=5.0)
CHANNELS = ("messenger", "instagram", "whatsapp")
TRANSIENT_CODES = frozenset({1, 2, 4, 17, 32, 341, 613, 1200, 80007, 130429, 131000, 131016, 131056, 133004})
"""Graph API error codes that mean "not now" (temporary failures, rate limits, throttling), not "never"."""
TEMPLATE_TEXT_LIMIT = 1024
"""A template body holds at most this many characters, so its variable can hold no more."""


class MetaUnavailable(Exception):
    """The Graph API could not take the message now: the outbox retries."""


class MetaSender:
    """One sender for the three channels of a Meta app (register it under each of `CHANNELS`)."""

    def __init__(self, graph_url: str, access_token: str, whatsapp: WhatsAppConfig | None = None,
                 clock: Clock = system_clock):
        self.graph_url = graph_url.rstrip("/")
        self.whatsapp = whatsapp or WhatsAppConfig()
        self.clock = clock
        self.client = httpx.AsyncClient(timeout=TIMEOUT, headers={"Authorization": f"Bearer {access_token}"})

    async def send(self, item: OutboxItem) -> None:
        payload, channel = item.payload, item.channel
        if problem := too_long(channel, payload["text"]):
            raise PermanentDeliveryError(problem)
        path, body = request_for(channel, payload, whatsapp=self.whatsapp, now=self.clock())
        try:
            response = await self.client.post(self.graph_url + path, json=body)
        except httpx.TransportError as exc:
            raise MetaUnavailable(f"the Graph API is unreachable: {exc!r}") from exc
        _check(channel, response)


def request_for(channel: str, payload: dict[str, Any], *, whatsapp: WhatsAppConfig | None = None,
                now: datetime | None = None) -> tuple[str, dict[str, Any]]:
    """(path, JSON body) of the Graph API call that sends `payload` on `channel` at `now`."""
    if channel == "whatsapp":
        whatsapp = whatsapp or WhatsAppConfig()
        number = payload.get("phone_number_id") or whatsapp.phone_number_id
        if not isinstance(number, str) or not number.isdigit():
            raise PermanentDeliveryError("no WhatsApp business number to send from: the customer's WhatsApp message"
                                         " this answers did not name the number that received it, and"
                                         " [whatsapp] phone_number_id is not set")
        common = {"messaging_product": "whatsapp", "recipient_type": "individual", "to": payload["to"],
                  "biz_opaque_callback_data": payload["message_id"]}
        if now is not None and not window_open(payload, now):
            return f"/{number}/messages", {**common, "type": "template", "template": template_message(
                reply_template(whatsapp, payload.get("language")), payload["text"])}
        return f"/{number}/messages", {**common, "type": "text",
                                       "text": {"preview_url": False, "body": payload["text"]}}
    body: dict[str, Any] = {"recipient": {"id": payload["to"]}, "message": {"text": payload["text"]}}
    if channel == "messenger":
        body["messaging_type"] = "RESPONSE"
    return "/me/messages", body


def window_open(payload: dict[str, Any], now: datetime) -> bool:
    """Whether WhatsApp still takes a free-form message for this item: its payload says when the
    window opened by the customer's latest message closes (none: they never wrote, so it is closed)."""
    closes = payload.get("window_closes_at")
    try:
        return isinstance(closes, str) and now < datetime.fromisoformat(closes)
    except ValueError:
        return False


def reply_template(whatsapp: WhatsAppConfig, language: object) -> WhatsAppTemplate:
    """The reply template for the ticket's language, else the English one, else refused."""
    templates = whatsapp.reply_templates
    found = templates.get(language) if isinstance(language, str) else None
    found = found or templates.get("en") or next(iter(templates.values()), None)
    if found is None:
        raise PermanentDeliveryError("WhatsApp's 24-hour window closed before the message went out and no reply"
                                     " template is configured ([whatsapp] reply_templates): send it by email")
    return found


def template_message(template: WhatsAppTemplate, text: str) -> dict[str, Any]:
    """The Cloud API `template` object sending `text` as the body's variable `{{1}}`, on one line."""
    line = " ".join(text.split())
    if len(line) > TEMPLATE_TEXT_LIMIT:
        raise PermanentDeliveryError(f"outside WhatsApp's 24-hour window a reply goes as a template, which holds at"
                                     f" most {TEMPLATE_TEXT_LIMIT} characters, and this one has {len(line)}:"
                                     " shorten it, or send it by email")
    return {"name": template.name, "language": {"code": template.language},
            "components": [{"type": "body", "parameters": [{"type": "text", "text": line}]}]}


def _check(channel: str, response: httpx.Response) -> None:
    if response.is_success:
        return
    try:
        answer = response.json()
    except ValueError:
        answer = None
    found = answer.get("error") if isinstance(answer, dict) else None
    error: dict[str, Any] = found if isinstance(found, dict) else {}
    code, subcode = error.get("code"), error.get("error_subcode")
    detail = " ".join(str(part) for part in (
        f"{response.status_code}", f"code {code}" if code is not None else None,
        f"subcode {subcode}" if subcode is not None else None) if part)
    message = str(error.get("message") or response.reason_phrase)[:300]
    name = channel_name(channel)
    if response.status_code == 429 or response.status_code >= 500 or error.get("is_transient") is True \
            or code in TRANSIENT_CODES:
        raise MetaUnavailable(f"{name} could not take the message now ({detail}): {message}")
    raise PermanentDeliveryError(f"{name} refused the message ({detail}): {message}")
