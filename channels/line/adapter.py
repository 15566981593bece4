"""LINE Messaging API webhooks → verified customer messages (SPEC §3: `POST /webhooks/line`).

The signature (`X-Line-Signature`: base64 of the HMAC-SHA256 of the raw body with
LINE_CHANNEL_SECRET) is checked in constant time before the body is parsed (see `channels.base`).

Message events from one-to-one chats become messages from the proved identity `line:<userId>`;
their one-time reply token goes into the metadata, so a reply sent within about a minute is free
(`channels.line.send`). Images, videos, audio and files are noted in the text and referenced by
their message id (LINE serves the content from its content API; it is not downloaded here).
Group and room chats, follows, postbacks, anything from our own bot (the webhook's `destination`)
and every other event are acknowledged and logged: the platform would only retry them. A
redelivered event has the same message id and is stored once.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
from dataclasses import dataclass
from typing import Any

from channels.base import RawRequest
from router.core.errors import MalformedBody, Unauthorized
from router.core.inbound import MAX_TEXT_CHARS, Identity, InboundMessage, json_object, single_line, storable

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "x-line-signature"
MEDIA = {"image": "image", "video": "video", "audio": "audio", "file": "file"}


@dataclass(frozen=True)
class LineSecrets:
    channel_secret: str


def signature(body: bytes, channel_secret: str) -> str:
    """What LINE sends in `X-Line-Signature` for `body`."""
    return base64.b64encode(hmac.new(channel_secret.encode(), body, hashlib.sha256).digest()).decode()


def verify_signature(request: RawRequest, channel_secret: str) -> None:
    given = request.headers.get(SIGNATURE_HEADER, "").strip()
    if not hmac.compare_digest(given.encode(), signature(request.body, channel_secret).encode()):
        raise Unauthorized("X-Line-Signature is missing or does not match the body"
                           " (base64 HMAC-SHA256 of the raw body with LINE_CHANNEL_SECRET)")


def parse(request: RawRequest, secrets: LineSecrets) -> list[InboundMessage]:
    """The customer messages in a signed LINE webhook (LINE's URL check sends none: `events: []`)."""
    verify_signature(request, secrets.channel_secret)
    data = json_object(request.body)
    events = data.get("events")
    if not isinstance(events, list):
        raise MalformedBody("a LINE webhook has an `events` list")
    bot = data.get("destination")  # the user id of our own bot, which received these events
    messages = []
    for event in events:
        message = _message(event if isinstance(event, dict) else {}, bot if isinstance(bot, str) else None)
        if message is not None:
            messages.append(message)
    return messages


def _text(value: object) -> str | None:
    return storable(value)[:MAX_TEXT_CHARS] if isinstance(value, str) and value.strip() else None


def _dict(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _note(kind: str, detail: str | None = None) -> str:
    detail = single_line(storable(detail)) if detail else None
    return f"[{kind}: {detail}]" if detail else f"[{kind}]"


def _message(event: dict[str, Any], bot: str | None) -> InboundMessage | None:
    kind = event.get("type")
    source = _dict(event.get("source"))
    if kind != "message":
        log.info("line: ignored a %r event", kind)
        return None
    if source.get("type") != "user":
        log.info("line: ignored a message in a %r chat (only one-to-one chats are support conversations)",
                 source.get("type"))
        return None
    if bot is not None and source.get("userId") == bot:
        log.info("line: ignored a message from our own bot")  # answering ourselves would loop
        return None
    body = _dict(event.get("message"))
    user, message_id = _text(source.get("userId")), _text(body.get("id"))
    if user is None or message_id is None:
        log.warning("line: ignored a message event without a user id or a message id")
        return None
    text, attachment = _content(str(body.get("type")), body, message_id)
    metadata: dict[str, Any] = {"attachments": [attachment]} if attachment else {}
    if reply_token := _text(event.get("replyToken")):
        metadata["reply_token"] = reply_token
    return InboundMessage(channel="line", identities=(Identity("line", user.strip()),), text=text,
                          external_id=message_id.strip(), metadata=metadata)


def _content(kind: str, body: dict[str, Any], message_id: str) -> tuple[str, dict[str, Any] | None]:
    """(text, attachment reference) of one LINE message of type `kind`."""
    if kind == "text":
        return _text(body.get("text")) or _note("empty message"), None
    if kind in MEDIA:
        provider = _dict(body.get("contentProvider"))
        reference: dict[str, Any] = {"type": kind, "message_id": message_id}
        if url := _text(provider.get("originalContentUrl")):
            reference["url"] = url
        if name := _text(body.get("fileName")):
            reference["filename"] = name
        return _note(MEDIA[kind], name), reference
    if kind == "location":
        place = (body.get(key) for key in ("title", "address", "latitude", "longitude"))
        return _note("location", ", ".join(str(part) for part in place if part is not None)), None
    if kind == "sticker":
        keywords = [word for word in body.get("keywords") or [] if isinstance(word, str)][:3]
        return _note("sticker", ", ".join(keywords)), None
    return _note(f"{kind} message"), None  # a type newer than this code: the customer wrote; say so
