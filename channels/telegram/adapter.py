"""Telegram Bot API webhooks → verified customer messages (SPEC §3: `POST /webhooks/telegram`).

Telegram does not sign updates: it sends the `secret_token` we gave `setWebhook` back in
`X-Telegram-Bot-Api-Secret-Token`, compared here in constant time with TELEGRAM_SECRET_TOKEN before
the body is parsed (see `channels.base`).

`message` and `edited_message` updates from private chats become messages from the proved identity
`telegram:<user id>` (the private chat's id is the user's id, which is where replies go). An edit is
stored as a message of its own, marked as an edit. Other bots (`is_bot`), group and channel chats and
every other update type are acknowledged and logged. A shared contact is only a claim of a phone
number (SPEC §2.4). Files and photos are noted in the text and referenced by their `file_id`.
"""

from __future__ import annotations

import hmac
import logging
from dataclasses import dataclass
from typing import Any

from channels.base import RawRequest
from router.core.errors import Unauthorized
from router.core.inbound import (
    MAX_TEXT_CHARS,
    Identity,
    InboundMessage,
    json_object,
    phone_identity,
    single_line,
    storable,
)

log = logging.getLogger(__name__)

SECRET_HEADER = "x-telegram-bot-api-secret-token"
MESSAGE_UPDATES = ("message", "edited_message")
MEDIA = ("photo", "document", "video", "audio", "voice", "video_note", "animation", "sticker")


@dataclass(frozen=True)
class TelegramSecrets:
    secret_token: str


def verify_secret(request: RawRequest, secret_token: str) -> None:
    given = request.headers.get(SECRET_HEADER, "")
    if not hmac.compare_digest(given.encode(), secret_token.encode()):
        raise Unauthorized("X-Telegram-Bot-Api-Secret-Token is missing or is not TELEGRAM_SECRET_TOKEN")


def parse(request: RawRequest, secrets: TelegramSecrets) -> list[InboundMessage]:
    """The customer message in a Telegram update, if it holds one (an update holds at most one)."""
    verify_secret(request, secrets.secret_token)
    update = json_object(request.body)
    kind = next((key for key in update if key != "update_id"), None)
    if kind not in MESSAGE_UPDATES:
        log.info("telegram: ignored a %r update", kind)
        return []
    message = _message(_dict(update[kind]), edited=kind == "edited_message")
    return [message] if message is not None else []


def _text(value: object) -> str | None:
    return storable(value)[:MAX_TEXT_CHARS] if isinstance(value, str) and value.strip() else None


def _dict(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _note(kind: str, detail: str | None = None) -> str:
    detail = single_line(storable(detail)) if detail else None
    return f"[{kind}: {detail}]" if detail else f"[{kind}]"


def _message(body: dict[str, Any], *, edited: bool) -> InboundMessage | None:
    sender, chat = _dict(body.get("from")), _dict(body.get("chat"))
    user, message_id = _int(sender.get("id")), _int(body.get("message_id"))
    if chat.get("type") != "private":
        log.info("telegram: ignored a message in a %r chat (only private chats are support conversations)",
                 chat.get("type"))
        return None
    if sender.get("is_bot"):
        log.info("telegram: ignored a message from a bot")  # never answer other bots: they answer back
        return None
    if user is None or message_id is None:
        log.warning("telegram: ignored a message without a sender id or a message id")
        return None
    text, attachment, claims = _content(body)
    external_id = f"{_int(chat.get('id')) or user}:{message_id}"
    if edited:
        external_id += f":edited:{_int(body.get('edit_date')) or 0}"
        text = f"(edited) {text}"
    name = " ".join(part for part in (_text(sender.get("first_name")), _text(sender.get("last_name"))) if part)
    metadata: dict[str, Any] = {"attachments": [attachment]} if attachment else {}
    if username := _text(sender.get("username")):
        metadata["username"] = username
    return InboundMessage(channel="telegram", identities=(Identity("telegram", str(user)),), claims=claims,
                          text=text, external_id=external_id, sender_name=single_line(name) or None,
                          metadata=metadata)


def _content(body: dict[str, Any]) -> tuple[str, dict[str, Any] | None, tuple[Identity, ...]]:
    """(text, attachment reference, claims) of one Telegram message."""
    caption = _text(body.get("text")) or _text(body.get("caption"))
    kind = next((key for key in MEDIA if key in body), None)
    if kind is not None:
        media = body[kind]
        # A photo comes in several sizes, smallest first: the last is the original.
        item = _dict(media[-1] if isinstance(media, list) and media else media)
        name = _text(item.get("file_name")) or (_text(item.get("emoji")) if kind == "sticker" else None)
        reference: dict[str, Any] = {"type": kind, **{key: value for key in ("file_id", "mime_type")
                                                      if (value := _text(item.get(key)))}}
        if name:
            reference["filename"] = name
        label = "image" if kind == "photo" else "file" if kind == "document" else kind.replace("_", " ")
        return "\n".join(filter(None, (caption, _note(label, name)))), reference, ()
    if caption:
        return caption, None, ()
    if "location" in body:
        location = _dict(body["location"])
        return _note("location", f"{location.get('latitude')}, {location.get('longitude')}"), None, ()
    if "contact" in body:
        contact = _dict(body["contact"])
        number = _text(contact.get("phone_number"))
        claimed = phone_identity(number) if number else None
        name = " ".join(filter(None, (_text(contact.get("first_name")), _text(contact.get("last_name")))))
        return _note("contact", ", ".join(filter(None, (name, number)))), None, (claimed,) if claimed else ()
    kinds = [key for key in body if key not in ("message_id", "from", "chat", "date", "edit_date")]
    return _note(f"{kinds[0] if kinds else 'empty'} message"), None, ()
