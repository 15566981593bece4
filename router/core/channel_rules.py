"""What each messaging platform lets us send, as pure rules (SPEC §2.12).

The reply action enforces them and the inbox's reply selector shows them, from the same functions,
so an agent never sees a channel offered that the action would refuse (or the other way round).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

REPLY_WINDOW = timedelta(hours=24)
"""WhatsApp, Messenger and Instagram take free-form messages only this long after the customer's
last message on that platform; after it, only pre-approved templates: WhatsApp replies go out as the
configured one (`[whatsapp] reply_templates`) when there is one, else they are refused."""

WINDOWED = {"whatsapp": "WhatsApp", "messenger": "Messenger", "instagram": "Instagram"}

TEXT_LIMITS = {"whatsapp": 4096, "messenger": 2000, "instagram": 1000, "line": 5000, "telegram": 4096}
"""The longest text one message may carry on each platform (characters), per their send APIs."""

CHANNEL_NAMES = {**WINDOWED, "line": "LINE", "telegram": "Telegram", "email": "email", "chat": "chat"}


@dataclass(frozen=True)
class Available:
    """A reply can go out now; `until` is when the platform's window closes (None: no window).
    `template`: outside WhatsApp's window, as the configured reply template."""

    until: datetime | None = None
    template: bool = False


@dataclass(frozen=True)
class Unavailable:
    """No free-form reply on this channel now. `rule` names why for a UI that words it itself;
    `reason` is the English sentence the API answers with."""

    rule: Literal["never_wrote", "window_closed"]
    reason: str
    last_customer_message_at: datetime | None = None


Availability = Available | Unavailable


def channel_name(channel: str) -> str:
    return CHANNEL_NAMES.get(channel, channel)


def availability(channel: str, last_customer_message_at: datetime | None, now: datetime, *,
                 whatsapp_template: bool = False) -> Availability:
    """Whether an agent may send a reply on `channel` now, given when the customer last wrote on it
    (their latest non-automated inbound message there, across all their tickets), and whether a
    WhatsApp reply template is configured for when the window is closed."""
    name = WINDOWED.get(channel)
    if name is None:
        return Available()
    closes = last_customer_message_at + REPLY_WINDOW if last_customer_message_at is not None else None
    if closes is not None and now < closes:
        return Available(until=closes)
    if channel == "whatsapp" and whatsapp_template:
        return Available(template=True)
    rule = f"{name} allows free-form replies only within 24 hours of the customer's last {name} message"
    if last_customer_message_at is None:
        return Unavailable("never_wrote", f"{rule}, and this customer has never written on {name}")
    hours = int((now - last_customer_message_at).total_seconds() // 3600)
    return Unavailable("window_closed",
                       f"{rule}; their last one was {hours} hours ago"
                       f" ({last_customer_message_at.strftime('%Y-%m-%d %H:%M %Z').strip()})",
                       last_customer_message_at)


def too_long(channel: str, text: str) -> str | None:
    """Why `text` cannot go out as one message on `channel` (longer than the platform takes), or None."""
    limit = TEXT_LIMITS.get(channel)
    if limit is None or len(text) <= limit:
        return None
    return f"a {channel_name(channel)} message holds at most {limit} characters and this one has {len(text)}"


def reply_context(channel: str, metadata: Mapping[str, Any], received_at: datetime) -> dict[str, Any]:
    """What a channel's sender needs from the customer's latest message there to answer it, to be put
    in the outbox item's payload: WhatsApp's business number that received it (`phone_number_id`) and
    when its window closes (a retry after that goes out as the reply template, `channels.meta.send`),
    LINE's one-time reply token and when we received it (the token is free but valid about a minute
    after LINE delivers the webhook). WhatsApp's window runs from when the customer sent the message
    (`sent_at`, WhatsApp's timestamp) if that was earlier than its webhook reached us: a webhook
    redelivered hours later does not move WhatsApp's window."""
    if channel == "whatsapp":
        opened = min(received_at, _sent_at(metadata) or received_at)
        context = {"window_closes_at": (opened + REPLY_WINDOW).isoformat()}
        if isinstance(metadata.get("phone_number_id"), str):
            context["phone_number_id"] = metadata["phone_number_id"]
        return context
    if channel == "line" and isinstance(metadata.get("reply_token"), str):
        return {"reply_token": metadata["reply_token"], "reply_token_at": received_at.isoformat()}
    return {}


def _sent_at(metadata: Mapping[str, Any]) -> datetime | None:
    value = metadata.get("sent_at")
    try:
        sent = datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        return None
    return sent if sent is not None and sent.tzinfo is not None else None
