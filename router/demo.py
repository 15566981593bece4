"""`router demo`: realistic sample traffic into a running instance, on every channel it serves.

The social channels' traffic is signed as each platform signs it, with the secrets the server
verifies with. The built-in demo config has webhook secrets of its own when none is set: each is
derived from the install's secret key (`with_demo_channel_secrets`), which `router serve` and
`router demo` both read from the data dir, so they agree without anyone choosing a secret, and no
two installs share one. Replies to the demo's social customers are never sent to the real
platforms: without META_ACCESS_TOKEN, LINE_CHANNEL_TOKEN or TELEGRAM_BOT_TOKEN no sender exists for
those channels, so acks and agent replies stay queued on the ticket (as email does without
ROUTER_SMTP_RELAY).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import sys
import time
from dataclasses import replace
from email.message import EmailMessage
from typing import Any

import aiosmtplib
import httpx

from channels.line.adapter import signature as line_signature
from channels.meta.adapter import signature as meta_signature
from router.config import Settings, ensure_secret_key

WEB_FORM = [
    {"name": "山田 花子", "email": "hanako@example.jp", "subject": "請求について",
     "message": "先月の請求金額が二重になっています。返金をお願いします。"},
    {"name": "Tom Baker", "email": "tom@example.net", "subject": "Cannot login",
     "message": "I get an error every time I try to login since yesterday."},
]
EMAILS = [
    ("佐藤 健", "ken@example.jp", "配送について", "注文した商品がまだ届かないのですが、配送状況を教えてください。"),
    ("Maria Lopez", "maria@example.org", "URGENT: charged twice",
     "I was charged twice for order 1182, please refund asap."),
]
API = [
    {"channel": "api", "sender": {"id": "crm-991", "name": "Hanako Yamada", "email": "hanako@example.jp"},
     "text": "(via CRM) お客様から追加の連絡：請求書の再発行も希望されています。", "external_id": "crm-note-1"},
]


async def send_demo_traffic(settings: Settings) -> int:
    base = f"http://{settings.http_host}:{settings.http_port}"
    async with httpx.AsyncClient(base_url=base, timeout=10) as client:
        try:
            await client.get("/healthz")
        except httpx.TransportError:
            print(f"No router answers at {base}: start it with `make run` first.", file=sys.stderr)
            return 1
        for form in WEB_FORM:
            response = await client.post("/support", json=form)
            print(f"web form  {form['email']:<22} → {response.status_code} {response.json().get('ticket_ref')}")
        for name, address, subject, text in EMAILS:
            message = EmailMessage()
            message["From"] = f"{name} <{address}>"
            message["To"] = "support@example.com"
            message["Subject"] = subject
            message.set_content(text)
            reply = await aiosmtplib.send(message, hostname=settings.smtp_host, port=settings.smtp_port)
            print(f"email     {address:<22} → {reply[1]}")
        if settings.api_token:
            for body in API:
                response = await client.post("/api/v1/messages", json=body,
                                             headers={"Authorization": f"Bearer {settings.api_token}"})
                sender = body["sender"]
                assert isinstance(sender, dict)
                print(f"api       {sender['email']:<22} → {response.status_code} {response.json()}")
        else:
            print("api       skipped (set ROUTER_API_TOKEN on both sides to include the integration API)")
        await _social(client, social_settings(settings))
        from channels.chat.demo import send_chat_traffic  # visitors in the chat widget, as a browser talks

        await send_chat_traffic(base)
    return 0


# -- social channels ----------------------------------------------------------------------------

WHATSAPP = [("819012345678", "佐藤 結衣", "注文番号 A-2291 の配送状況を教えてください。まだ届いていません。")]
MESSENGER = [("24081536972041", "Hi, I was charged twice for my subscription this month. Can you refund one?")]
INSTAGRAM = [("17841400111222333", "Is the blue jacket back in stock? The app shows an error when I order.")]
LINE = [("U1c0d2e3f4a5b6c7d8e9f0a1b2c3d4e5f", "ログインできません。パスワードを再設定してもエラーになります。")]
TELEGRAM = [(482915730, "Emma", "Watts", "Hello! My tracking number has shown no update for 5 days. Order #5531.")]
PAGE_ID, INSTAGRAM_ACCOUNT, WABA_ID, PHONE_NUMBER_ID = "104857361200411", "17841405822304914", "102290129340398", \
    "106540352242922"


def with_demo_channel_secrets(settings: Settings) -> Settings:
    """`settings` with every unset webhook secret derived from the secret key (never the senders' tokens).
    Only for the built-in demo config: a real deployment names its secrets (SPEC §3)."""
    if not settings.secret_key:
        raise ValueError("the demo's channel secrets are derived from the secret key: set it first")

    def derived(name: str) -> str:
        return hmac.new(settings.secret_key.encode(), f"router demo {name}".encode(), hashlib.sha256).hexdigest()[:40]

    return replace(settings, meta_app_secret=settings.meta_app_secret or derived("meta_app_secret"),
                   meta_verify_token=settings.meta_verify_token or derived("meta_verify_token"),
                   line_channel_secret=settings.line_channel_secret or derived("line_channel_secret"),
                   telegram_secret_token=settings.telegram_secret_token or derived("telegram_secret_token"))


def social_settings(settings: Settings) -> Settings:
    """The secrets a running `router serve` verifies with: the environment's, and with the built-in
    demo config the derived ones for whatever the environment leaves unset."""
    settings = ensure_secret_key(settings)
    if settings.config_path is None:
        settings = with_demo_channel_secrets(settings)
    return settings


SignedRequest = tuple[str, bytes, dict[str, str]]
"""(path, raw body, headers) of a webhook request as the platform sends it."""


def whatsapp_request(secret: str, *, wa_id: str, name: str, text: str, message_id: str, at: int) -> SignedRequest:
    """A WhatsApp Cloud API `messages` webhook holding one text message (the documented shape)."""
    value = {"messaging_product": "whatsapp",
             "metadata": {"display_phone_number": "15550783881", "phone_number_id": PHONE_NUMBER_ID},
             "contacts": [{"profile": {"name": name}, "wa_id": wa_id}],
             "messages": [{"from": wa_id, "id": message_id, "timestamp": str(at), "type": "text",
                           "text": {"body": text}}]}
    return _meta({"object": "whatsapp_business_account",
                  "entry": [{"id": WABA_ID, "changes": [{"value": value, "field": "messages"}]}]}, secret)


def messaging_request(secret: str, *, product: str, sender: str, text: str, message_id: str,
                      at_ms: int) -> SignedRequest:
    """A Messenger (`page`) or Instagram (`instagram`) webhook holding one text message."""
    account = PAGE_ID if product == "page" else INSTAGRAM_ACCOUNT
    event = {"sender": {"id": sender}, "recipient": {"id": account}, "timestamp": at_ms,
             "message": {"mid": message_id, "text": text}}
    return _meta({"object": product, "entry": [{"id": account, "time": at_ms, "messaging": [event]}]}, secret)


def line_request(secret: str, *, user: str, text: str, message_id: str, at_ms: int) -> SignedRequest:
    """A LINE Messaging API webhook holding one text message event from a one-to-one chat."""
    event = {"replyToken": hashlib.sha256(message_id.encode()).hexdigest()[:32], "type": "message",
             "mode": "active", "timestamp": at_ms, "source": {"type": "user", "userId": user},
             "webhookEventId": f"01DEMO{message_id}", "deliveryContext": {"isRedelivery": False},
             "message": {"id": message_id, "type": "text", "quoteToken": "q" + message_id, "text": text}}
    body = _json({"destination": "Uf0a1b2c3d4e5f60718293a4b5c6d7e8f", "events": [event]})
    return "/webhooks/line", body, {"Content-Type": "application/json",
                                    "X-Line-Signature": line_signature(body, secret)}


def telegram_request(secret: str, *, user: int, first_name: str, last_name: str, text: str, update_id: int,
                     message_id: int, at: int) -> SignedRequest:
    """A Telegram Bot API update holding one private-chat message."""
    person = {"id": user, "first_name": first_name, "last_name": last_name}
    body = _json({"update_id": update_id, "message": {
        "message_id": message_id, "from": {**person, "is_bot": False, "language_code": "en"},
        "chat": {**person, "type": "private"}, "date": at, "text": text}})
    return "/webhooks/telegram", body, {"Content-Type": "application/json", "X-Telegram-Bot-Api-Secret-Token": secret}


def _meta(data: dict[str, Any], secret: str) -> SignedRequest:
    body = _json(data)
    return "/webhooks/meta", body, {"Content-Type": "application/json",
                                    "X-Hub-Signature-256": meta_signature(body, secret)}


def _json(data: dict[str, Any]) -> bytes:
    return json.dumps(data, ensure_ascii=False).encode()


def social_requests(settings: Settings, now: float) -> list[tuple[str, str, SignedRequest]]:
    """(label, who, request) for each social message of the demo whose channel has its secret. Ids
    carry the time, so every run of the demo is new traffic (a platform's retry would reuse them)."""
    stamp, ms = int(now), int(now * 1000)
    requests = []
    if secret := settings.meta_app_secret:
        for wa_id, name, text in WHATSAPP:
            requests.append(("whatsapp", wa_id, whatsapp_request(secret, wa_id=wa_id, name=name, text=text, at=stamp,
                                                                 message_id=f"wamid.demo{ms}{wa_id}")))
        for product, rows in (("page", MESSENGER), ("instagram", INSTAGRAM)):
            for sender, text in rows:
                requests.append(("messenger" if product == "page" else "instagram", sender, messaging_request(
                    secret, product=product, sender=sender, text=text, message_id=f"m_demo{ms}{sender}", at_ms=ms)))
    if secret := settings.line_channel_secret:
        for user, text in LINE:
            requests.append(("line", user, line_request(secret, user=user, text=text, message_id=str(ms), at_ms=ms)))
    if secret := settings.telegram_secret_token:
        for telegram_user, first, last, text in TELEGRAM:
            requests.append(("telegram", str(telegram_user), telegram_request(
                secret, user=telegram_user, first_name=first, last_name=last, text=text, update_id=stamp,
                message_id=stamp % 1_000_000, at=stamp)))
    return requests


async def _social(client: httpx.AsyncClient, settings: Settings) -> None:
    """WhatsApp, Messenger, Instagram, LINE and Telegram messages through the server's webhooks."""
    for label, who, (path, body, headers) in social_requests(settings, time.time()):
        response = await client.post(path, content=body, headers=headers)
        outcome = response.text if response.status_code != 404 else \
            "the server has no secret for this channel: set the same one on both sides (README)"
        print(f"{label:<9} {who:<22} → {response.status_code} {outcome[:120]}")
    for name, variable in (("meta_app_secret", "META_APP_SECRET"), ("line_channel_secret", "LINE_CHANNEL_SECRET"),
                           ("telegram_secret_token", "TELEGRAM_SECRET_TOKEN")):
        if not getattr(settings, name):
            print(f"{variable.split('_')[0].lower():<9} skipped (set {variable} on both sides)")

