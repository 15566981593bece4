"""Auto-acknowledgement of new tickets, on the channel they came from (SPEC §2.9).

The text says the ticket reference and when the first reply is due, in the customer's language
and timezone. Rendering is pure; `queue_ack` decides whether to acknowledge at all and puts the
ack in the outbox within the ingest transaction.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from zoneinfo import ZoneInfo

import asyncpg

from router.config import Config
from router.core import channel_rules, kb
from router.core.inbound import InboundMessage
from router.core.outbound import queue_outbound
from router.core.store.tickets import Ticket

DEFAULT_TEMPLATES = {
    "ack": {
        "ja": "お問い合わせを受け付けました（{ref}）。{due}までにご返信いたします。\n"
              "このメッセージにご返信いただくと、同じお問い合わせに追加されます。",
        "en": "We received your request ({ref}). We will reply by {due}.\n"
              "Reply to this message to add to the same request.",
    },
    "ack_no_due": {
        "ja": "お問い合わせを受け付けました（{ref}）。担当者より順次ご返信いたします。",
        "en": "We received your request ({ref}). An agent will get back to you soon.",
    },
    "ack_subject": {
        "ja": "[{ref}] お問い合わせを受け付けました",
        "en": "[{ref}] We received your request",
    },
}
_WEEKDAYS_JA = "月火水木金土日"

# Channels whose acks we can deliver back; the web form and integrations answer by email.
REPLY_CHANNEL = {"web": "email", "api": "email"}


def format_due(due: datetime, timezone: str, language: str) -> str:
    """`11月26日(木) 14:00 JST` / `Thu 26 Nov 14:00 JST` in the customer's timezone."""
    local = due.astimezone(ZoneInfo(timezone))
    zone = local.tzname() or timezone
    if language == "ja":
        return f"{local.month}月{local.day}日({_WEEKDAYS_JA[local.weekday()]}) {local:%H:%M} {zone}"
    return f"{local:%a} {local.day} {local:%b %H:%M} {zone}"


def template(templates: Mapping[str, Mapping[str, str]], name: str, language: str) -> str:
    """Admin-edited text first, then our default; Japanese or English, English as the fallback."""
    for source in (templates.get(name, {}), DEFAULT_TEMPLATES[name]):
        if language in source:
            return source[language]
    return templates.get(name, {}).get("en") or DEFAULT_TEMPLATES[name]["en"]


def render_ack(templates: Mapping[str, Mapping[str, str]], *, ref: str, due: datetime | None, timezone: str,
               language: str) -> tuple[str, str]:
    """(subject, text) of the acknowledgement."""
    language = language if language in ("ja", "en") else "en"
    subject = template(templates, "ack_subject", language).format(ref=ref)
    if due is None:
        return subject, template(templates, "ack_no_due", language).format(ref=ref)
    text = template(templates, "ack", language).format(ref=ref, due=format_due(due, timezone, language))
    return subject, text


def is_our_address(config: Config, address: str) -> bool:
    """Our own support address (and its plus-addresses): acknowledging it would loop."""
    local, _, domain = address.partition("@")
    support_local, _, support_domain = config.service.support_address.partition("@")
    return domain == support_domain and local.split("+", 1)[0] == support_local


async def queue_ack(conn: asyncpg.Connection, config: Config, *, message: InboundMessage, ticket: Ticket,
                    customer_id: int, customer_timezone: str | None, due: datetime | None, now: datetime) -> bool:
    """Queue the acknowledgement of a new ticket, unless it must not be sent. Returns whether queued."""
    if message.auto_kind is not None:
        return False
    channel = REPLY_CHANNEL.get(message.channel, message.channel)
    # A typed address (a claim) is acknowledged too: the ack reaches the address's owner, not the typist.
    sender = next((i for i in (*message.identities, *message.claims) if i.kind == channel), None)
    if sender is None:
        return False
    if channel == "email" and is_our_address(config, sender.value):
        return False
    ref = ticket.ref
    templates = await kb.ack_templates(conn, config, message, ticket.language)  # fills {suggestions} if used
    subject, text = render_ack(templates, ref=ref, due=due, language=ticket.language,
                               timezone=customer_timezone or config.service.timezone)
    extra = {"ticket_ref": ref, "language": ticket.language, "auto_submitted": True,
             "in_reply_to": message.external_id if message.channel == "email" else None,
             "references": list(message.thread_refs),
             # WhatsApp answers from the business number that received the message; LINE's free reply token.
             **channel_rules.reply_context(channel, message.metadata, message.received_at or now)}
    queued = await queue_outbound(
        conn, key=f"ack:{ticket.id}", kind="ack", channel=channel, ticket_id=ticket.id,
        customer_id=customer_id, to=sender.value, subject=subject, text=text, now=now,
        mail_domain=config.service.support_address.partition("@")[2],
        secret=config.settings.secret_key, extra=extra,
        unless_sent_since=now - config.service.ack_rate_limit)
    return queued is not None
