"""Agent replies: pick the customer's channel and address, respect the platform's rules, thread the
email, stop the SLA clocks."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import asyncpg

from agents.store import AgentIdentity
from router.config import Config
from router.core import channel_rules
from router.core.acks import REPLY_CHANNEL
from router.core.actions import Context, agent_text, ticket_for_update
from router.core.channel_rules import Unavailable
from router.core.errors import InvalidInput
from router.core.outbound import queue_outbound
from router.core.store import customers, receipts, tickets
from router.core.store.tickets import Ticket
from sla import clocks

MAX_REPLY_CHARS = 50_000


@dataclass(frozen=True)
class Destination:
    """Where a reply goes, and what the channel's sender needs to answer the customer's latest
    message there (`channel_rules.reply_context`)."""

    channel: str
    address: str
    context: dict[str, Any] = field(default_factory=dict)


async def destination(conn: asyncpg.Connection, ticket: Ticket, channel: str | None, now: datetime, *,
                      whatsapp_template: bool = False) -> Destination:
    """The requested channel, else the customer's latest inbound one (the web form and integrations
    are answered by email); refused when the customer has no address there, or when the platform
    takes no free-form message now (SPEC §2.12: the 24-hour windows), naming the rule and the email
    address to use instead."""
    if channel is None:
        channel = await tickets.reply_destination(conn, ticket)
    channel = REPLY_CHANNEL.get(channel, channel)
    address = await customers.address_on(conn, ticket.customer_id, channel)
    if address is None:
        raise InvalidInput(f"the customer cannot be reached on {channel!r}: no identity for that channel")
    latest = await receipts.latest_inbound(conn, ticket.customer_id, channel)
    ruling = channel_rules.availability(channel, latest.at if latest else None, now,
                                        whatsapp_template=whatsapp_template)
    if isinstance(ruling, Unavailable):
        raise InvalidInput(await _refusal(conn, ticket, channel, ruling))
    context = channel_rules.reply_context(channel, latest.metadata, latest.at) if latest else {}
    return Destination(channel, address, context)


async def _refusal(conn: asyncpg.Connection, ticket: Ticket, channel: str, ruling: Unavailable) -> str:
    email = await customers.address_on(conn, ticket.customer_id, "email")
    instead = (f"Reply by email instead ({email}): send the reply with channel \"email\"." if email
               else "The customer has no email address to reply to instead.")
    return f"cannot reply on {channel_rules.channel_name(channel)}: {ruling.reason}. {instead}"


async def reply(ctx: Context, actor: AgentIdentity, ref: str, text: str, *, channel: str | None = None,
                idempotency_key: str | None = None) -> int | None:
    """Send `text` to the customer on the ticket `ref`; returns the message id (None: this
    idempotency key was used already, nothing new was sent)."""
    text = agent_text(text, MAX_REPLY_CHARS, "reply")
    now = ctx.clock()
    async with ctx.pool.acquire() as conn, conn.transaction():
        ticket = await ticket_for_update(conn, ref)
        return await _queue_reply(conn, ctx.config, ticket, text, channel, actor.id, idempotency_key, now)


async def _queue_reply(conn: asyncpg.Connection, config: Config, ticket: Ticket, text: str, channel: str | None,
                       agent_id: int | None, idempotency_key: str | None, now: datetime) -> int | None:
    target = await destination(conn, ticket, channel, now, whatsapp_template=bool(config.whatsapp.reply_templates))
    if problem := channel_rules.too_long(target.channel, text):
        raise InvalidInput(f"{problem}: shorten the reply, or send it by email")
    extra: dict[str, object] = {"ticket_ref": ticket.ref, "language": ticket.language, **target.context}
    if target.channel == "email":
        thread = await tickets.email_thread(conn, ticket.id)
        customer_ids = [external_id for external_id, direction in thread if direction == "in"]
        references = [external_id for external_id, _ in thread]
        # Answer the customer's latest mail; References carry the whole conversation for their client.
        latest = customer_ids or references
        extra.update(in_reply_to=latest[-1] if latest else None, references=references[-20:])
    subject = f"Re: [{ticket.ref}] {ticket.subject or ''}".strip()
    key = f"reply:{ticket.id}:{idempotency_key or uuid.uuid4().hex}"
    message_id = await queue_outbound(
        conn, key=key, kind="reply", channel=target.channel, ticket_id=ticket.id, customer_id=ticket.customer_id,
        to=target.address, subject=subject, text=text, now=now, author_agent_id=agent_id, extra=extra,
        mail_domain=config.service.support_address.partition("@")[2], secret=config.settings.secret_key)
    if message_id is None:
        return None
    await tickets.agent_replied(conn, ticket.id, now)
    await clocks.agent_replied(conn, ticket.id, now)
    return message_id
