"""Meta webhooks → verified customer messages and delivery receipts (SPEC §3: `GET|POST /webhooks/meta`).

One app webhook carries three products, told apart by `object`: Messenger (`page`), Instagram
(`instagram`) and the WhatsApp Cloud API (`whatsapp_business_account`). The signature
(`X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the raw body with META_APP_SECRET>`) is checked in
constant time before the body is parsed (see `channels.base` for the contract).

What becomes a customer message: texts, attachments (noted in the text, referenced in the metadata:
the platform's URLs and media ids, never downloaded here), locations, shared contacts, button and
postback answers. What never does, so we never answer ourselves (issue 11 §5): echoes of what our
page sent (`is_echo`, or a sender that is our page or account), messages from our own WhatsApp
business number, delivery and read receipts, reactions. WhatsApp `statuses` for messages we sent
come back as `StatusUpdate`s, matched to our message through `biz_opaque_callback_data`, which our
sender sets to the message's external id.
Anything else is acknowledged and logged, never an error: the platform would only retry it.

Identities: the platform user id (`messenger`, `instagram`, `whatsapp`) is proved; WhatsApp's `wa_id`
is also a phone number WhatsApp verified, so it is a proved `phone` identity too (SPEC §2.4).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from channels.base import RawRequest
from router.core.errors import Forbidden, MalformedBody, Unauthorized
from router.core.inbound import (
    MAX_TEXT_CHARS,
    Identity,
    InboundMessage,
    json_object,
    phone_identity,
    single_line,
    storable,
    storable_text,
)

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "x-hub-signature-256"
CHALLENGE = re.compile(r"[\x21-\x7e]{1,256}")
STATUSES = ("delivered", "read", "failed")
MESSAGING_OBJECTS = {"page": "messenger", "instagram": "instagram"}
NOT_MESSAGES = ("delivery", "read", "reaction", "optin", "referral", "account_linking", "policy_enforcement",
                "pass_thread_control", "take_thread_control", "request_thread_control", "app_roles",
                "message_edit", "game_play", "response_feedback")
"""Messenger/Instagram events that are no customer message (receipts, reactions, handovers…)."""
ATTACHMENT_LABELS = {"document": "file", "fallback": "link"}
MEDIA_FIELDS = ("id", "mime_type", "filename")
"""What a WhatsApp media message's reference keeps: the media id fetches it from the Graph API."""
WHATSAPP_SKIPPED = ("reaction", "system", "request_welcome", "ephemeral")
"""WhatsApp message types that are no customer message: reactions, number changes, chat openings."""


@dataclass(frozen=True)
class MetaSecrets:
    app_secret: str


@dataclass(frozen=True)
class StatusUpdate:
    """WhatsApp's report on a message we sent. `message_ref` is what our sender put in
    `biz_opaque_callback_data` (our message's external id); None for messages sent by other tools."""

    message_ref: str | None
    platform_message_id: str
    status: Literal["delivered", "read", "failed"]
    error: str | None
    occurred_at: datetime


@dataclass(frozen=True)
class MetaWebhook:
    messages: tuple[InboundMessage, ...] = ()
    statuses: tuple[StatusUpdate, ...] = ()


def verify_subscription(params: Mapping[str, str], verify_token: str) -> str:
    """The `hub.challenge` to answer Meta's subscription handshake with, when `hub.mode` is
    `subscribe` and `hub.verify_token` is ours (compared in constant time); else Forbidden."""
    if params.get("hub.mode") != "subscribe":
        raise Forbidden("`hub.mode` must be \"subscribe\"")
    if not hmac.compare_digest(params.get("hub.verify_token", "").encode(), verify_token.encode()):
        raise Forbidden("`hub.verify_token` does not match META_VERIFY_TOKEN")
    challenge = params.get("hub.challenge", "")
    if not CHALLENGE.fullmatch(challenge):
        raise Forbidden("`hub.challenge` must be 1 to 256 visible ASCII characters")
    return challenge


def signature(body: bytes, app_secret: str) -> str:
    """What Meta sends in `X-Hub-Signature-256` for `body`."""
    return "sha256=" + hmac.new(app_secret.encode(), body, hashlib.sha256).hexdigest()


def verify_signature(request: RawRequest, app_secret: str) -> None:
    scheme, _, given = request.headers.get(SIGNATURE_HEADER, "").partition("=")
    expected = signature(request.body, app_secret).partition("=")[2]
    if scheme.strip().lower() != "sha256" or not hmac.compare_digest(given.strip().lower().encode(),
                                                                     expected.encode()):
        raise Unauthorized("X-Hub-Signature-256 is missing or does not match the body"
                           " (HMAC-SHA256 of the raw body with META_APP_SECRET)")


def parse(request: RawRequest, secrets: MetaSecrets) -> MetaWebhook:
    """The customer messages and our messages' statuses in a signed Meta webhook."""
    verify_signature(request, secrets.app_secret)
    data = json_object(request.body)
    entries = data.get("entry")
    if not isinstance(entries, list):
        raise MalformedBody("a Meta webhook has an `entry` list")
    kind = data.get("object")
    if kind in MESSAGING_OBJECTS:
        return MetaWebhook(messages=tuple(_messaging(MESSAGING_OBJECTS[kind], entries)))
    if kind == "whatsapp_business_account":
        messages: list[InboundMessage] = []
        statuses: list[StatusUpdate] = []
        for value in _whatsapp_values(entries):
            messages.extend(_whatsapp_messages(value))
            statuses.extend(_whatsapp_statuses(value))
        return MetaWebhook(tuple(messages), tuple(statuses))
    log.info("meta: ignored a webhook for object %r", kind)
    return MetaWebhook()


# -- values --------------------------------------------------------------------------------------

def _id(value: object) -> str | None:
    """A platform id: a non-blank string, or a number (ids sometimes arrive as numbers)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, str) and value.strip() and storable_text(value):
        return value.strip()
    return None


def _digits(value: str) -> str:
    return "".join(char for char in value if char.isdigit())


def _text(value: object) -> str | None:
    return storable(value)[:MAX_TEXT_CHARS] if isinstance(value, str) and value.strip() else None


def _dict(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: object) -> list[Any]:
    return value if isinstance(value, list) else []


def _unix(value: object) -> datetime | None:
    """A platform's Unix timestamp (seconds, as a number or a numeric string)."""
    if not isinstance(value, (int, float, str)) or isinstance(value, bool):
        return None
    try:
        return datetime.fromtimestamp(float(value), UTC)
    except (ValueError, OverflowError, OSError):
        return None


def _note(kind: str, detail: str | None = None) -> str:
    """How an attachment shows in the message text: `[image]`, `[file: invoice.pdf]`."""
    detail = single_line(storable(detail)) if detail else None
    return f"[{kind}: {detail}]" if detail else f"[{kind}]"


def _join(*parts: str | None) -> str:
    return "\n".join(part for part in parts if part)


# -- Messenger and Instagram ---------------------------------------------------------------------

def _messaging(channel: str, entries: list[Any]) -> Iterator[InboundMessage]:
    for entry in map(_dict, entries):
        for key in ("standby", "changes"):
            if entry.get(key):
                log.info("meta: ignored %d %s %s event(s)", len(_list(entry[key])), channel, key)
        account = _id(entry.get("id"))  # our page or Instagram account
        for event in map(_dict, _list(entry.get("messaging"))):
            message = _messaging_event(channel, event, account)
            if message is not None:
                yield message


def _messaging_event(channel: str, event: dict[str, Any], account: str | None) -> InboundMessage | None:
    sender = _id(_dict(event.get("sender")).get("id"))
    page = _id(_dict(event.get("recipient")).get("id"))
    if "message" in event:
        body = _dict(event["message"])
        if body.get("is_echo") or (sender is not None and sender in (page, account)):
            log.debug("meta: skipped the echo of our own %s message", channel)
            return None
        if body.get("is_deleted"):
            log.info("meta: ignored an unsent %s message", channel)
            return None
        mid = _id(body.get("mid"))
        notes, refs = _messaging_attachments(body.get("attachments"))
        unsupported = _note("unsupported message") if body.get("is_unsupported") else None
        text = _join(_text(body.get("text")), *notes, unsupported)
        metadata: dict[str, Any] = {"attachments": refs} if refs else {}
    elif "postback" in event:
        postback = _dict(event["postback"])
        mid = _id(postback.get("mid")) or (f"postback:{sender}:{event.get('timestamp')}" if sender else None)
        text = _text(postback.get("title")) or _text(postback.get("payload")) or ""
        payload = _text(postback.get("payload"))
        metadata = {"postback": payload} if payload else {}
    else:
        kinds = [key for key in event if key not in ("sender", "recipient", "timestamp")]
        if any(kind in NOT_MESSAGES for kind in kinds):
            log.debug("meta: skipped a %s %s event (not a customer message)", channel, "/".join(kinds))
        else:
            log.info("meta: ignored an unknown %s event type %s", channel, "/".join(kinds) or "(empty)")
        return None
    if sender is None or mid is None or not text:
        log.warning("meta: ignored a %s message without a sender, an id or any content", channel)
        return None
    if page is not None:
        metadata["page_id"] = page
    return InboundMessage(channel=channel, identities=(Identity(channel, sender),), text=text, external_id=mid,
                          metadata=metadata)


def _messaging_attachments(value: object) -> tuple[list[str], list[dict[str, Any]]]:
    """(notes for the text, references for the metadata) of a message's attachments."""
    notes, refs = [], []
    for attachment in map(_dict, _list(value)):
        kind = attachment["type"] if isinstance(attachment.get("type"), str) else "attachment"
        payload = _dict(attachment.get("payload"))
        title = _text(attachment.get("title")) or _text(payload.get("title"))
        if kind == "location":
            coordinates = _dict(payload.get("coordinates"))
            place = (title, coordinates.get("lat"), coordinates.get("long"))
            notes.append(_note("location", ", ".join(str(part) for part in place if part is not None)))
            continue
        notes.append(_note(ATTACHMENT_LABELS.get(kind, kind), title))
        ref: dict[str, Any] = {"type": kind}
        if url := _text(payload.get("url")):
            ref["url"] = url
        refs.append(ref)
    return notes, refs


# -- WhatsApp ------------------------------------------------------------------------------------

def _whatsapp_values(entries: list[Any]) -> Iterator[dict[str, Any]]:
    for entry in map(_dict, entries):
        for change in map(_dict, _list(entry.get("changes"))):
            if change.get("field") != "messages":
                log.info("meta: ignored a WhatsApp %r change", change.get("field"))
                continue
            value = _dict(change.get("value"))
            for error in map(_dict, _list(value.get("errors"))):
                log.warning("meta: WhatsApp reported an error: %s", _error_text(error))
            yield value


def _whatsapp_messages(value: dict[str, Any]) -> Iterator[InboundMessage]:
    business = _dict(value.get("metadata"))
    names = {_id(contact.get("wa_id")): _text(_dict(contact.get("profile")).get("name"))
             for contact in map(_dict, _list(value.get("contacts")))}
    ours = _id(business.get("display_phone_number"))
    for message in map(_dict, _list(value.get("messages"))):
        kind = message.get("type")
        sender, mid = _id(message.get("from")), _id(message.get("id"))
        if kind in WHATSAPP_SKIPPED:
            log.debug("meta: skipped a WhatsApp %s (not a customer message)", kind)
            continue
        if sender is not None and ours is not None and _digits(sender) == _digits(ours):
            log.info("meta: skipped a WhatsApp message from our own business number")  # answering it would loop
            continue
        if sender is None or mid is None:
            log.warning("meta: ignored a WhatsApp message without a sender or an id")
            continue
        text, refs = _whatsapp_content(str(kind), message)
        identities = [Identity("whatsapp", sender)]
        phone = phone_identity("+" + sender) if sender.isdigit() else None
        if phone is not None:
            identities.append(phone)  # wa_id: a phone number WhatsApp verified (SPEC §2.4)
        metadata: dict[str, Any] = {"attachments": refs} if refs else {}
        if _id(business.get("phone_number_id")):
            metadata["phone_number_id"] = _id(business.get("phone_number_id"))
        if sent := _unix(message.get("timestamp")):
            metadata["sent_at"] = sent.isoformat()  # the 24-hour window runs from here (`channel_rules`)
        yield InboundMessage(channel="whatsapp", identities=tuple(identities), text=text, external_id=mid,
                             sender_name=single_line(names.get(sender)), metadata=metadata)


def _whatsapp_content(kind: str, message: dict[str, Any]) -> tuple[str, list[dict[str, Any]]]:
    """(text, attachment references) of one WhatsApp message of type `kind`."""
    body = _dict(message.get(kind))
    if kind == "text":
        return _text(body.get("body")) or _note("empty message"), []
    if kind in ("image", "video", "audio", "document", "sticker"):
        label = ATTACHMENT_LABELS.get(kind, kind)
        ref = {"type": kind, **{key: value for key in MEDIA_FIELDS if (value := _text(body.get(key)))}}
        return _join(_text(body.get("caption")), _note(label, _text(body.get("filename")))), [ref]
    if kind == "location":
        place = ", ".join(str(body[k]) for k in ("name", "address", "latitude", "longitude") if body.get(k) is not None)
        return _note("location", place), []
    if kind == "contacts":
        shared = [", ".join(filter(None, [_text(_dict(c.get("name")).get("formatted_name")),
                                          *(_text(_dict(p).get("phone")) for p in _list(c.get("phones")))]))
                  for c in map(_dict, _list(message.get("contacts")))]
        return _join(*(_note("contact", card) for card in shared)) or _note("contact"), []
    if kind == "interactive":
        answer = _dict(body.get("button_reply")) or _dict(body.get("list_reply"))
        return _text(answer.get("title")) or _note("interactive answer"), []
    if kind == "button":
        return _text(body.get("text")) or _note("button"), []
    return _note(f"{kind} message"), []  # unsupported, order…: the customer wrote; say so rather than drop it


def _whatsapp_statuses(value: dict[str, Any]) -> Iterator[StatusUpdate]:
    for status in map(_dict, _list(value.get("statuses"))):
        state, platform_id = status.get("status"), _id(status.get("id"))
        if state not in STATUSES:
            log.debug("meta: skipped a WhatsApp %r status", state)
            continue
        occurred = _unix(status.get("timestamp"))
        if platform_id is None or occurred is None:
            log.warning("meta: ignored a WhatsApp status without an id or a timestamp")
            continue
        errors = [_error_text(error) for error in map(_dict, _list(status.get("errors")))]
        callback = status.get("biz_opaque_callback_data")
        yield StatusUpdate(message_ref=callback if isinstance(callback, str) and callback else None,
                           platform_message_id=platform_id, status=state, error="; ".join(errors) or None,
                           occurred_at=occurred)


def _error_text(error: dict[str, Any]) -> str:
    """`131047 Re-engagement message: More than 24 hours have passed… (details)`."""
    parts = [str(part) for part in (error.get("code"), error.get("title")) if part is not None]
    message, details = error.get("message"), _dict(error.get("error_data")).get("details")
    if isinstance(message, str) and message and message != error.get("title"):
        parts.append(f"- {message}")
    if isinstance(details, str) and details:
        parts.append(f"({details})")
    return (single_line(storable(" ".join(parts))) or "unknown error")[:500]
